// spec.spider: what to crawl and what to extract. Setting names follow Scrapy's
// (CONCURRENT_REQUESTS -> concurrentRequests, …), with Scrapy's defaults.
import Type from "typebox";
import { StringEnum } from "./builders.ts";
import { cel } from "./common.ts";

const Url = Type.String({ minLength: 1, maxLength: 2048 });
const Pattern = Type.String({ minLength: 1, maxLength: 1024, description: "A JavaScript regular expression." });
const Selector = Type.String({ minLength: 1, maxLength: 1024, description: "A CSS selector (cheerio)." });

export const FollowRule = Type.Object(
  {
    selector: Type.Optional(Selector),
    json: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1024,
        description:
          "JSON responses: follow the URLs this JSONPath selects (e.g. $.next for pagination); resolved against the response URL.",
      }),
    ),
    allow: Type.Optional(Type.Array(Pattern, { maxItems: 64 })),
    deny: Type.Optional(Type.Array(Pattern, { maxItems: 64 })),
    restrict: Type.Optional(StringEnum(["none", "sameHost", "sameDomain"] as const, { default: "none" })),
    cookies: Type.Optional(
      Type.Boolean({
        default: true,
        description:
          "false: requests for these links neither send nor store cookies (Scrapy's dont_merge_cookies). The first rule that finds a link decides.",
      }),
    ),
  },
  { additionalProperties: false },
);
export type FollowRule = Type.Static<typeof FollowRule>;

export const FieldRule = Type.Object(
  {
    selector: Type.Optional(Selector),
    text: Type.Optional(Type.Boolean()),
    attr: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    all: Type.Optional(Type.Boolean()),
    regex: Type.Optional(Pattern),
    type: Type.Optional(StringEnum(["string", "number", "integer", "boolean"] as const)),
    absolute: Type.Optional(Type.Boolean()),
    jsonld: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 512,
        description:
          "From the page's JSON-LD (<script type=application/ld+json>): a schema.org type, then properties, e.g. Product.offers.price, Article.headline, *.name. Lists are looked into; the first value (all: every value).",
      }),
    ),
    json: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1024,
        description:
          "From a JSON response: a JSONPath ($.items[*].name; subset: .name ['name'] [n] [*] .* ..name), relative to the item when the rule has itemPath.",
      }),
    ),
    meta: Type.Optional(
      StringEnum(["url", "status", "depth"] as const, {
        description:
          "Take the value from the response (its final URL, HTTP status or crawl depth) instead of the page.",
      }),
    ),
    default: Type.Optional(Type.Union([Type.String({ maxLength: 4096 }), Type.Number(), Type.Boolean()])),
    required: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type FieldRule = Type.Static<typeof FieldRule>;

export const ExtractRule = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, pattern: "^[A-Za-z][A-Za-z0-9_-]*$" }),
    itemSelector: Type.Optional(Selector),
    itemPath: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1024,
        description: "JSON responses: one item per value this JSONPath selects (e.g. $.products[*]).",
      }),
    ),
    urlPattern: Type.Optional(Pattern),
    fields: Type.Record(Type.String({ maxLength: 128 }), FieldRule, { minProperties: 1, maxProperties: 256 }),
  },
  { additionalProperties: false },
);
export type ExtractRule = Type.Static<typeof ExtractRule>;

const SecretKey = (description: string) =>
  Type.String({ minLength: 1, maxLength: 253, pattern: "^[-._a-zA-Z0-9]+$", description });

/**
 * The proxies' credentials from a Secret in the CrawlJob's namespace: two keys
 * (usernameKey, passwordKey; default `username` and `password`, a
 * kubernetes.io/basic-auth Secret's) or one key holding `user:password`. The
 * operator passes them to the runner pod as env from the Secret
 * (PROXY_*_ENV, names.ts); they are sent to every proxy as Proxy-Authorization.
 */
export const ProxyCredentialsSecretRef = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 253, description: "Secret name in the CrawlJob's namespace." }),
    usernameKey: Type.Optional(SecretKey("The key holding the user name (default username).")),
    passwordKey: Type.Optional(SecretKey("The key holding the password (default password).")),
    key: Type.Optional(SecretKey("One key holding user:password (instead of usernameKey and passwordKey).")),
  },
  {
    additionalProperties: false,
    description:
      "Proxy credentials from a Secret (never copied into the CrawlJob's ConfigMap, status or logs), sent as Proxy-Authorization to every proxy. Runner pods only; feedcrawl crawl reads the same env variables (FEEDCRAWL_PROXY_USERNAME / FEEDCRAWL_PROXY_PASSWORD, or FEEDCRAWL_PROXY_CREDENTIALS=user:password).",
    ...cel({
      rule: "!has(self.key) || (!has(self.usernameKey) && !has(self.passwordKey))",
      message: "key (user:password in one value) excludes usernameKey and passwordKey",
      fieldPath: ".key",
    }),
  },
);
export type ProxyCredentialsSecretRef = Type.Static<typeof ProxyCredentialsSecretRef>;

export const ProxySettings = Type.Object(
  {
    urls: Type.Array(Type.String({ minLength: 1, maxLength: 2048 }), {
      minItems: 1,
      maxItems: 100,
      description:
        "HTTP(S) forward proxies (http://host:port or https://host:port; user:password@ in the URL is sent as Proxy-Authorization). Several are rotated.",
    }),
    rotation: Type.Optional(
      StringEnum(["perRequest", "perHost"] as const, {
        default: "perRequest",
        description: "perRequest: round robin over urls; perHost: each target host always uses the same proxy.",
      }),
    ),
    credentialsSecretRef: Type.Optional(ProxyCredentialsSecretRef),
    noProxy: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 260 }), {
        maxItems: 256,
        description:
          "Hosts sent directly (NO_PROXY syntax): a name (and its subdomains), an IP or CIDR, optional :port, or *.",
      }),
    ),
  },
  {
    additionalProperties: false,
    ...cel({
      rule: "!has(self.credentialsSecretRef) || self.urls.all(u, !u.matches('^[^/]*//[^/]*@'))",
      message: "credentialsSecretRef and user:password@ in a proxy URL exclude each other",
      fieldPath: ".credentialsSecretRef",
    }),
  },
);
export type ProxySettings = Type.Static<typeof ProxySettings>;

export const SitemapRule = Type.Object(
  {
    pattern: Type.String({
      maxLength: 1024,
      description: 'A JavaScript regular expression searched in the page URL ("" matches every URL, as in Scrapy).',
    }),
    extract: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 63 }), {
        maxItems: 64,
        description:
          "The extract rules (by name) that apply to the pages this rule admits; absent: every extract rule.",
      }),
    ),
  },
  { additionalProperties: false },
);
export type SitemapRule = Type.Static<typeof SitemapRule>;

export const SpiderSettings = Type.Object(
  {
    concurrentRequests: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, default: 16 })),
    concurrentRequestsPerDomain: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, default: 8 })),
    downloadDelayMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000, default: 0 })),
    randomizeDownloadDelay: Type.Optional(Type.Boolean({ default: true })),
    autoThrottle: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean({ default: false })),
          targetConcurrency: Type.Optional(Type.Number({ minimum: 0.1, maximum: 1024, default: 1 })),
          startDelayMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000, default: 5000 })),
          maxDelayMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000, default: 60000 })),
        },
        { additionalProperties: false },
      ),
    ),
    robotsTxtObey: Type.Optional(Type.Boolean({ default: true })),
    cookiesEnabled: Type.Optional(
      Type.Boolean({
        default: true,
        description:
          "Scrapy's COOKIES_ENABLED: one cookie jar per crawl (RFC 6265: host-only and Domain cookies, Path, Secure, expiry, public suffixes refused).",
      }),
    ),
    depthLimit: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000, default: 0 })),
    retryTimes: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, default: 2 })),
    retryHttpCodes: Type.Optional(Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { maxItems: 64 })),
    redirectMaxTimes: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, default: 20 })),
    downloadTimeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600, default: 180 })),
    maxResponseBytes: Type.Optional(
      Type.Integer({
        minimum: 1024,
        maximum: 1_073_741_824,
        default: 33_554_432,
        description:
          "Limit on one response's decoded body (after gzip/br/zstd), in bytes; a larger one fails as responseTooLarge. Default 32 MiB (Scrapy's DOWNLOAD_WARNSIZE).",
      }),
    ),
    userAgent: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    headers: Type.Optional(
      Type.Record(Type.String({ maxLength: 256 }), Type.String({ maxLength: 4096 }), { maxProperties: 64 }),
    ),
    allowPrivateNetworks: Type.Optional(
      Type.Union([Type.Boolean(), Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 64 })], {
        description: "true allows every private/loopback/link-local address; a list allows only those CIDRs.",
      }),
    ),
    proxy: Type.Optional(ProxySettings),
    httpCache: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean({ default: false })),
          dir: Type.Optional(
            Type.String({
              minLength: 1,
              maxLength: 1024,
              default: ".feedcrawl/httpcache",
              description: "Where responses are kept, relative to the working directory (one folder per spider).",
            }),
          ),
          expirationSeconds: Type.Optional(
            Type.Integer({
              minimum: 0,
              maximum: 315_360_000,
              default: 0,
              description: "A cached response older than this is fetched again (0: never expires).",
            }),
          ),
          ignoreHttpCodes: Type.Optional(
            Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), {
              maxItems: 64,
              description: "Responses with these statuses are never cached.",
            }),
          ),
        },
        {
          additionalProperties: false,
          description:
            "Scrapy's HTTPCACHE_*: responses (robots.txt too) kept on disk and replayed, so re-running a crawl while writing selectors does not hit the site again. Local CLI only (feedcrawl crawl); a runner pod ignores it with a warning.",
        },
      ),
    ),
    delta: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean({ default: false })),
          key: Type.Optional(
            Type.String({
              minLength: 1,
              maxLength: 63,
              pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
              description:
                "Names the delta state: runs with the same key share it. Default: the CrawlSchedule's name for a CrawlJob a schedule made; required in a cluster otherwise. `feedcrawl crawl` defaults it to the spider's name.",
            }),
          ),
        },
        {
          additionalProperties: false,
          description:
            "Delta crawls for recurring runs: detail pages (URLs matching an extract rule's urlPattern) are fetched with If-None-Match / If-Modified-Since from the last run and a 304 yields nothing; listing pages are fetched whole so their links are always followed. Items whose content (type and fields) an earlier run delivered are not written. The state is saved only after a run that ended `finished` with every batch stored and reported: in the feed bucket in a cluster, in --delta-dir locally.",
        },
      ),
    ),
    closeSpider: Type.Optional(
      Type.Object(
        {
          itemCount: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
          pageCount: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
          timeoutSeconds: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
          errorCount: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type SpiderSettings = Type.Static<typeof SpiderSettings>;

export const SpiderSpec = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, pattern: "^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$" }),
    startUrls: Type.Array(Url, {
      maxItems: 10_000,
      description: "Where the crawl starts; may be empty when sitemapUrls give the pages.",
    }),
    allowedDomains: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 1000 })),
    follow: Type.Optional(Type.Array(FollowRule, { maxItems: 64 })),
    extract: Type.Optional(Type.Array(ExtractRule, { maxItems: 64 })),
    module: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1024,
        description:
          "A JS/TS module exporting parse(response, ctx): a path (relative to the CrawlJob file for feedcrawl crawl) or a package name. In a cluster it must be in the runner image; else use moduleConfigMapRef.",
      }),
    ),
    moduleConfigMapRef: Type.Optional(
      Type.Object(
        {
          name: Type.String({
            minLength: 1,
            maxLength: 253,
            description: "ConfigMap name in the CrawlJob's namespace.",
          }),
          key: Type.String({
            minLength: 4,
            maxLength: 253,
            pattern: "^[-._a-zA-Z0-9]+\\.[cm]?[jt]s$",
            description: "The key holding the module's source; its name is the file name (.js, .mjs, .cjs, .ts, .mts).",
          }),
        },
        {
          additionalProperties: false,
          description:
            "The module (as spider.module) from a ConfigMap key, mounted read-only into the runner pod at /etc/feedcrawl-module/<key>. Runner pods only: feedcrawl crawl refuses it (use module: <local path>).",
        },
      ),
    ),
    sitemapUrls: Type.Optional(
      Type.Array(Url, {
        maxItems: 1000,
        description:
          "Sitemaps (XML, .xml.gz, sitemap indexes) or robots.txt URLs whose Sitemap: lines are read (Scrapy's SitemapSpider.sitemap_urls).",
      }),
    ),
    sitemapRules: Type.Optional(
      Type.Array(SitemapRule, {
        maxItems: 64,
        description:
          "Which sitemap URLs to crawl: the first rule whose pattern matches decides (and names its extract rules); URLs no rule matches are skipped. Absent: every URL, every extract rule.",
      }),
    ),
    sitemapFollow: Type.Optional(
      Type.Array(Pattern, {
        maxItems: 64,
        description: "Sitemaps of a sitemap index to read (regexes on their URL); absent: all.",
      }),
    ),
    sitemapAlternateLinks: Type.Optional(
      // No `default:`: it is refused without sitemapUrls, and the API server would fill it in everywhere.
      Type.Boolean({ description: "Also crawl a URL's <xhtml:link rel=alternate> (other languages); default false." }),
    ),
    sitemapModifiedSince: Type.Optional(
      Type.String({
        minLength: 2,
        maxLength: 64,
        description:
          "Skip sitemap entries whose lastmod is older: an RFC 3339 date or date-time, or an ISO 8601 duration back from the crawl's start (P7D, PT12H). Entries without lastmod are kept.",
      }),
    ),
    settings: Type.Optional(SpiderSettings),
  },
  {
    additionalProperties: false,
    ...cel(
      {
        rule: "size(self.startUrls) > 0 || (has(self.sitemapUrls) && size(self.sitemapUrls) > 0)",
        message: "startUrls is empty and there are no sitemapUrls: nothing to crawl",
        fieldPath: ".startUrls",
      },
      {
        rule: "!has(self.module) || !has(self.moduleConfigMapRef)",
        message: "module (a path) and moduleConfigMapRef exclude each other: name the module one way",
        fieldPath: ".moduleConfigMapRef",
      },
    ),
  },
);
export type SpiderSpec = Type.Static<typeof SpiderSpec>;
