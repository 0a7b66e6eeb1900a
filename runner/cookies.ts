// Cookies, as Scrapy's CookiesMiddleware keeps them: one jar per crawl
// (tough-cookie, RFC 6265), filled from every response's Set-Cookie (redirects
// and error answers included) and sent with every request to a matching URL.
// The jar decides what matches: host-only cookies stay on their host, a Domain
// cookie reaches that domain and its subdomains only, Domain attributes that
// are public suffixes (`co.uk`, `github.io`) or other sites are refused, Path,
// Secure, Max-Age and Expires are honoured.
import { CookieJar } from "tough-cookie";

/** Set-Cookie headers read from one response; more are ignored (a hostile page could send thousands). */
const MAX_SET_COOKIE_PER_RESPONSE = 100;

export class CookieSession {
  readonly #jar = new CookieJar(undefined, { rejectPublicSuffixes: true, looseMode: false });
  /** Cookies the jar refused (public suffix, another domain, malformed). */
  rejected = 0;

  /**
   * `headers` with the Cookie header for `url`: the jar's cookies after those of
   * a Cookie header the request already carries (its names win, as in Scrapy,
   * where an explicit Cookie header is sent as written).
   */
  withCookies(url: string, headers: Record<string, string>): Record<string, string> {
    const jar = this.#jar.getCookiesSync(url);
    if (jar.length === 0) return headers;
    const key = Object.keys(headers).find((k) => k.toLowerCase() === "cookie");
    const explicit = key !== undefined ? (headers[key] ?? "") : "";
    const taken = new Set(
      explicit
        .split(";")
        .map((p) => p.split("=")[0]?.trim())
        .filter(Boolean),
    );
    const added = jar.filter((c) => !taken.has(c.key)).map((c) => c.cookieString());
    if (added.length === 0) return headers;
    const out = { ...headers };
    if (key !== undefined) delete out[key];
    out.cookie = [explicit.trim().replace(/;$/, ""), ...added].filter(Boolean).join("; ");
    return out;
  }

  /** Stores the Set-Cookie headers of a response from `url`; returns how many the jar took. */
  store(url: string, setCookie: string | string[] | undefined): number {
    if (setCookie === undefined) return 0;
    const values = (Array.isArray(setCookie) ? setCookie : [setCookie]).slice(0, MAX_SET_COOKIE_PER_RESPONSE);
    let stored = 0;
    for (const v of values) {
      try {
        if (this.#jar.setCookieSync(v, url)) stored++;
        else this.rejected++;
      } catch {
        this.rejected++;
      }
    }
    return stored;
  }
}
