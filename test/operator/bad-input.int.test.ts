// Malformed CrawlJobs on the real API server with the operator running: each is
// rejected at admission (schema/CEL) with a message naming the field, or
// accepted and marked Validated=False with a reason and a message naming the
// field — and none of them ever gets a runner Job or a spec snapshot. Secret
// values never show up in status, Events, ConfigMaps or the operator's log.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import type { CrawlJobSpec } from "../../crds/schema/crawljob.ts";
import { KubeClient } from "../../kube/client.ts";
import { KubeApiError } from "../../kube/errors.ts";
import { CONFIGMAPS, CRAWLJOBS, EVENTS, JOBS } from "../../kube/resources.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually } from "../platform/fixtures.ts";
import {
  condition,
  createCrawlJob,
  createSecret,
  installCrds,
  type RunningOperator,
  readCrawlJob,
  startOperator,
  tempDir,
  untilCondition,
} from "./harness.ts";

const SECRET_VALUE = "sEcReT-VaLuE-that-must-never-leak-0123456789";

function validSpec(): CrawlJobSpec {
  return {
    spider: {
      name: "books",
      startUrls: ["https://books.example/"],
      follow: [{ selector: "ul.pager a", allow: ["/catalogue/"] }],
      extract: [
        {
          name: "product",
          itemSelector: "article.product_page",
          urlPattern: "/catalogue/[^/]+/index.html$",
          fields: {
            title: { selector: "h1", text: true },
            price: { selector: "p.price", text: true, regex: "[0-9.]+" },
          },
        },
      ],
    },
    feeds: { "s3://crawl-data/%(name)s/part-%(batch_id)05d.jsonl": { format: "jsonlines", batchItemCount: 100 } },
    storage: { s3: { endpoint: "http://s3.example:9000", credentialsSecretRef: { name: "s3-creds" } } },
    ingest: { webhook: { url: "https://backend.example/ingest", signingSecretRef: { name: "ingest-webhook" } } },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: test cases poke at arbitrary (invalid) shapes
type Spec = any;

interface Case {
  name: string;
  mutate: (spec: Spec) => void;
  /** Rejected by the API server; the message must match. */
  rejected?: RegExp;
  /** Accepted, then Validated=False with this reason and a message matching `field`. */
  reason?: string;
  field?: RegExp;
}

const cases: Case[] = [
  // Rejected at admission: schema, bounds, enums, CEL.
  {
    name: "no-start-urls",
    mutate: (s) => delete s.spider.startUrls,
    rejected: /spec\.spider\.startUrls: Required value/,
  },
  {
    name: "empty-start-urls",
    mutate: (s) => (s.spider.startUrls = []),
    rejected: /spec\.spider\.startUrls: Invalid value.*startUrls is empty and there are no sitemapUrls/,
  },
  { name: "no-spider", mutate: (s) => delete s.spider, rejected: /spec\.spider: Required value/ },
  { name: "bad-spider-name", mutate: (s) => (s.spider.name = "Books!"), rejected: /spec\.spider\.name/ },
  {
    name: "unknown-spider-field",
    mutate: (s) => (s.spider.startURLs = ["x"]),
    rejected: /unknown field "spec\.spider\.startURLs"/,
  },
  { name: "unknown-spec-field", mutate: (s) => (s.colour = "blue"), rejected: /unknown field "spec\.colour"/ },
  {
    name: "unknown-feed-format",
    mutate: (s) => (s.feeds["s3://crawl-data/%(name)s/part-%(batch_id)05d.jsonl"].format = "parquet"),
    rejected:
      /spec\.feeds\.s3:\/\/crawl-data\/%\(name\)s\/part-%\(batch_id\)05d\.jsonl\.format: Unsupported value: "parquet"/,
  },
  {
    name: "negative-batch-count",
    mutate: (s) => (s.feeds["s3://crawl-data/%(name)s/part-%(batch_id)05d.jsonl"].batchItemCount = -1),
    rejected: /batchItemCount: Invalid value: -1/,
  },
  {
    name: "batch-uri-without-placeholder",
    mutate: (s) => (s.feeds = { "s3://crawl-data/items.jsonl": { format: "jsonlines", batchItemCount: 100 } }),
    rejected: /spec\.feeds: Invalid value.*needs %\(batch_id\)d or %\(batch_time\)s/,
  },
  {
    name: "batch-seconds-without-placeholder",
    mutate: (s) => (s.feeds = { "s3://crawl-data/items.csv": { format: "csv", batchMaxSeconds: 60 } }),
    rejected: /spec\.feeds: Invalid value.*batch/,
  },
  {
    name: "zero-parallelism",
    mutate: (s) => (s.runner = { parallelism: 0 }),
    rejected: /spec\.runner\.parallelism: Invalid value: 0/,
  },
  {
    name: "huge-parallelism",
    mutate: (s) => (s.runner = { parallelism: 1000 }),
    rejected: /spec\.runner\.parallelism: Invalid value: 1000/,
  },
  {
    name: "negative-backoff",
    mutate: (s) => (s.runner = { backoffLimit: -1 }),
    rejected: /spec\.runner\.backoffLimit/,
  },
  // spec.runner's pod settings (admission: bounds, enums, CEL, strict fields).
  {
    name: "runner-grace-too-short",
    mutate: (s) => (s.runner = { terminationGracePeriodSeconds: 5 }),
    rejected: /spec\.runner\.terminationGracePeriodSeconds: Invalid value: 5/,
  },
  {
    name: "runner-tmp-too-small",
    mutate: (s) => (s.runner = { tmpSizeLimit: "100Mi" }),
    rejected: /spec\.runner\.tmpSizeLimit: Invalid value.*256Mi to 1Ti/,
  },
  {
    name: "runner-tmp-not-a-quantity",
    mutate: (s) => (s.runner = { tmpSizeLimit: "lots" }),
    rejected: /spec\.runner\.tmpSizeLimit/,
  },
  {
    name: "runner-env-reserved",
    mutate: (s) => (s.runner = { env: [{ name: "FEEDCRAWL_SHARD_COUNT", value: "9" }] }),
    rejected: /spec\.runner\.env: Invalid value.*FEEDCRAWL_\* and JOB_COMPLETION_INDEX are set by the operator/,
  },
  {
    name: "runner-env-aws-keys-beside-secret",
    mutate: (s) => (s.runner = { env: [{ name: "AWS_SECRET_ACCESS_KEY", value: "x" }] }),
    rejected: /spec\.runner\.env: Invalid value.*credentialsSecretRef/,
  },
  {
    name: "runner-env-value-and-value-from",
    mutate: (s) =>
      (s.runner = { env: [{ name: "A", value: "x", valueFrom: { secretKeyRef: { name: "s", key: "k" } } }] }),
    rejected: /spec\.runner\.env\[0\]: Invalid value.*set value or valueFrom, not both/,
  },
  {
    name: "runner-env-duplicate",
    mutate: (s) =>
      (s.runner = {
        env: [
          { name: "A", value: "1" },
          { name: "A", value: "2" },
        ],
      }),
    rejected: /spec\.runner\.env\[1\]: Duplicate value/,
  },
  {
    name: "runner-env-from-two-sources",
    mutate: (s) => (s.runner = { envFrom: [{ secretRef: { name: "a" }, configMapRef: { name: "b" } }] }),
    rejected: /spec\.runner\.envFrom\[0\]: Invalid value.*exactly one of secretRef, configMapRef/,
  },
  {
    name: "runner-toleration-effect",
    mutate: (s) => (s.runner = { tolerations: [{ key: "k", operator: "Exists", effect: "Sometimes" }] }),
    rejected: /spec\.runner\.tolerations\[0\]\.effect: Unsupported value: "Sometimes"/,
  },
  {
    name: "runner-service-account-annotation-key",
    mutate: (s) => (s.runner = { serviceAccountAnnotations: { "not a key!": "x" } }),
    rejected: /spec\.runner\.serviceAccountAnnotations: Invalid value.*qualified names/,
  },
  {
    name: "runner-affinity-typo",
    mutate: (s) => (s.runner = { affinity: { nodeAfinity: {} } }),
    rejected: /unknown field "spec\.runner\.affinity\.nodeAfinity"/,
  },
  {
    name: "zero-concurrency",
    mutate: (s) => (s.spider.settings = { concurrentRequests: 0 }),
    rejected: /spec\.spider\.settings\.concurrentRequests: Invalid value: 0/,
  },
  {
    name: "negative-retries",
    mutate: (s) => (s.spider.settings = { retryTimes: -2 }),
    rejected: /spec\.spider\.settings\.retryTimes/,
  },
  {
    name: "webhook-ftp",
    mutate: (s) => (s.ingest.webhook.url = "ftp://backend.example/x"),
    rejected: /spec\.ingest\.webhook\.url.*http\(s\)/,
  },
  {
    name: "webhook-not-a-url",
    mutate: (s) => (s.ingest.webhook.url = "backend ingest"),
    rejected: /spec\.ingest\.webhook\.url/,
  },
  {
    name: "webhook-mode",
    mutate: (s) => (s.ingest.webhook.mode = "sometimes"),
    rejected: /spec\.ingest\.webhook\.mode: Unsupported value: "sometimes"/,
  },
  {
    name: "webhook-timeout",
    mutate: (s) => (s.ingest.webhook.timeoutSeconds = 0),
    rejected: /spec\.ingest\.webhook\.timeoutSeconds/,
  },
  {
    name: "webhook-unsigned",
    mutate: (s) => delete s.ingest.webhook.signingSecretRef,
    rejected: /spec\.ingest\.webhook\.signingSecretRef: Required value/,
  },
  {
    name: "unknown-postprocessor",
    mutate: (s) => (s.feeds["s3://crawl-data/%(name)s/part-%(batch_id)05d.jsonl"].postprocessing = ["lzma"]),
    rejected: /postprocessing\[0\]: Unsupported value: "lzma"/,
  },
  {
    name: "start-url-number",
    mutate: (s) => (s.spider.startUrls = [42]),
    rejected: /spec\.spider\.startUrls\[0\]: Invalid value/,
  },
  { name: "negative-ttl", mutate: (s) => (s.ttlSecondsAfterFinished = -5), rejected: /spec\.ttlSecondsAfterFinished/ },
  {
    name: "bad-item-name",
    mutate: (s) => (s.spider.extract[0].name = "1product"),
    rejected: /spec\.spider\.extract\[0\]\.name/,
  },
  {
    name: "empty-fields",
    mutate: (s) => (s.spider.extract[0].fields = {}),
    rejected: /spec\.spider\.extract\[0\]\.fields/,
  },
  {
    name: "field-type",
    mutate: (s) => (s.spider.extract[0].fields.title.type = "date"),
    rejected: /fields\.title\.type: Unsupported value: "date"/,
  },
  // Accepted by the schema, refused by the operator's validation.
  {
    name: "bad-follow-selector",
    mutate: (s) => (s.spider.follow[0].selector = "ul >>> a["),
    reason: "InvalidSpec",
    field: /spec\.spider\.follow\[0\]\.selector/,
  },
  {
    name: "bad-allow-regex",
    mutate: (s) => (s.spider.follow[0].allow = ["([a-z"]),
    reason: "InvalidSpec",
    field: /spec\.spider\.follow\[0\]\.allow\[0\]/,
  },
  {
    name: "bad-field-regex",
    mutate: (s) => (s.spider.extract[0].fields.price.regex = "*price"),
    reason: "InvalidSpec",
    field: /spec\.spider\.extract\[0\]\.fields\.price\.regex/,
  },
  {
    name: "bad-url-pattern",
    mutate: (s) => (s.spider.extract[0].urlPattern = "(("),
    reason: "InvalidSpec",
    field: /spec\.spider\.extract\[0\]\.urlPattern/,
  },
  {
    name: "bad-item-selector",
    mutate: (s) => (s.spider.extract[0].itemSelector = "article[="),
    reason: "InvalidSpec",
    field: /spec\.spider\.extract\[0\]\.itemSelector/,
  },
  {
    name: "start-url-ftp",
    mutate: (s) => (s.spider.startUrls = ["ftp://books.example/"]),
    rejected: /spec\.spider\.startUrls: Invalid value.*http:\/\/ or https:\/\//,
  },
  {
    name: "per-domain-over-global",
    mutate: (s) => (s.spider.settings = { concurrentRequests: 2, concurrentRequestsPerDomain: 8 }),
    reason: "InvalidSpec",
    field: /spec\.spider\.settings\.concurrentRequestsPerDomain/,
  },
  {
    name: "absolute-without-attr",
    mutate: (s) => (s.spider.extract[0].fields.title.absolute = true),
    reason: "InvalidSpec",
    field: /spec\.spider\.extract\[0\]\.fields\.title\.absolute/,
  },
  {
    name: "allowed-domain-url",
    mutate: (s) => (s.spider.allowedDomains = ["https://books.example/"]),
    reason: "InvalidSpec",
    field: /spec\.spider\.allowedDomains\[0\]/,
  },
  {
    name: "feed-unknown-param",
    mutate: (s) =>
      (s.feeds = { "s3://crawl-data/%(nope)s-%(batch_id)d.jsonl": { format: "jsonlines", batchItemCount: 5 } }),
    reason: "InvalidSpec",
    field: /spec\.feeds\["s3:\/\/crawl-data\/%\(nope\)s-%\(batch_id\)d\.jsonl"\]/,
  },
  {
    name: "feed-no-bucket",
    mutate: (s) => (s.feeds = { "s3:///%(batch_id)d.jsonl": { format: "jsonlines", batchItemCount: 5 } }),
    reason: "InvalidSpec",
    field: /spec\.feeds\["s3:\/\/\/%\(batch_id\)d\.jsonl"\]/,
  },
  {
    name: "missing-s3-secret",
    mutate: (s) => (s.storage.s3.credentialsSecretRef.name = "absent"),
    reason: "SecretNotFound",
    field: /spec\.storage\.s3\.credentialsSecretRef\.name/,
  },
  {
    name: "s3-secret-key-missing",
    mutate: (s) => (s.storage.s3.credentialsSecretRef.name = "half-creds"),
    reason: "SecretKeyMissing",
    field: /spec\.storage\.s3\.credentialsSecretRef.*secretAccessKey/,
  },
  {
    name: "missing-signing-secret",
    mutate: (s) => (s.ingest.webhook.signingSecretRef.name = "absent"),
    reason: "SecretNotFound",
    field: /spec\.ingest\.webhook\.signingSecretRef\.name/,
  },
  {
    name: "signing-key-missing",
    mutate: (s) => (s.ingest.webhook.signingSecretRef.key = "nokey"),
    reason: "SecretKeyMissing",
    field: /spec\.ingest\.webhook\.signingSecretRef.*nokey/,
  },
  {
    name: "webhook-private-ip",
    mutate: (s) => (s.ingest.webhook.url = "http://10.0.0.5/ingest"),
    reason: "PrivateWebhookAddress",
    field: /spec\.ingest\.webhook\.url/,
  },
  {
    name: "webhook-loopback",
    mutate: (s) => (s.ingest.webhook.url = "http://127.0.0.1:9000/ingest"),
    reason: "PrivateWebhookAddress",
    field: /spec\.ingest\.webhook\.url/,
  },
  {
    name: "webhook-metadata-ip",
    mutate: (s) => (s.ingest.webhook.url = "http://169.254.169.254/latest"),
    reason: "PrivateWebhookAddress",
    field: /spec\.ingest\.webhook\.url/,
  },
  {
    name: "webhook-localhost",
    mutate: (s) => (s.ingest.webhook.url = "http://localhost/ingest"),
    reason: "PrivateWebhookAddress",
    field: /spec\.ingest\.webhook\.url/,
  },
];

describe("malformed CrawlJobs never get a runner", () => {
  const kc = adminKubeConfig();
  const client = new KubeClient(kc);
  let ns: Disposable;
  let operator: RunningOperator;
  const accepted: Case[] = [];

  before(async () => {
    await installCrds();
    ns = await createNamespace("op-bad");
    await createSecret(client, ns.name, "s3-creds", { accessKeyId: "AKIA-test", secretAccessKey: SECRET_VALUE });
    await createSecret(client, ns.name, "half-creds", { accessKeyId: "AKIA-test" });
    await createSecret(client, ns.name, "ingest-webhook", { secret: SECRET_VALUE });
    operator = await startOperator(kc, { namespaces: [ns.name], workDir: tempDir("op-bad") });
  });

  after(async () => {
    await operator?.stop();
    await ns?.cleanup();
    await client.close();
  });

  test(`there are at least 30 cases (${cases.length})`, () => {
    assert.ok(cases.length >= 30);
    assert.equal(new Set(cases.map((c) => c.name)).size, cases.length);
  });

  test("a valid CrawlJob is accepted and validated (the control case)", async () => {
    await createCrawlJob(client, ns.name, "valid", { ...validSpec(), suspend: true });
    const job = await untilCondition(client, ns.name, "valid", "Validated", "True");
    assert.equal(job.status?.phase, "Pending");
  });

  for (const c of cases) {
    test(`${c.name}: ${c.rejected ? "rejected by the API server" : `Validated=False/${c.reason}`}`, async () => {
      const spec = validSpec();
      c.mutate(spec);
      if (c.rejected) {
        const err = await createCrawlJob(client, ns.name, c.name, spec).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(err instanceof KubeApiError, `${c.name} was accepted`);
        assert.ok([422, 400].includes(err.code), `${err.code} ${err.message}`);
        assert.match(err.message, c.rejected);
        return;
      }
      await createCrawlJob(client, ns.name, c.name, spec);
      accepted.push(c);
      const job = await untilCondition(client, ns.name, c.name, "Validated", "False");
      const validated = condition(job, "Validated")!;
      assert.equal(validated.reason, c.reason, validated.message);
      assert.match(validated.message, c.field!);
      assert.equal(job.status?.phase, "Failed");
      assert.equal(condition(job, "Succeeded")?.status, "False");
    });
  }

  test("no malformed CrawlJob got a runner Job or a spec snapshot", async () => {
    assert.ok(accepted.length >= 10, `${accepted.length} accepted cases`);
    const jobs = await client.list(JOBS, { namespace: ns.name });
    assert.deepEqual(
      jobs.items.map((j) => j.metadata.name),
      [],
    );
    const configMaps = await client.list(CONFIGMAPS, { namespace: ns.name });
    assert.deepEqual(
      configMaps.items.map((c) => c.metadata.name).filter((n) => n?.endsWith("-spec")),
      [],
    );
  });

  test("an invalid CrawlJob fixed by an edit starts (the reason is level, not sticky)", async () => {
    const job = await readCrawlJob(client, ns.name, "missing-s3-secret");
    job.spec.storage!.s3!.credentialsSecretRef!.name = "s3-creds";
    job.spec.suspend = true; // no runner needed to see it validate
    await client.update(CRAWLJOBS, job);
    await eventually("Validated=True after the fix", async () => {
      const j = await readCrawlJob(client, ns.name, "missing-s3-secret");
      return condition(j, "Validated")?.status === "True" && j.status?.observedGeneration === 2;
    });
  });

  test("secret values appear nowhere: status, Events, ConfigMaps, the operator's log", async () => {
    const jobs = await client.list(CRAWLJOBS, { namespace: ns.name });
    const events = await client.list(EVENTS, { namespace: ns.name });
    const configMaps = await client.list(CONFIGMAPS, { namespace: ns.name });
    assert.ok(events.items.length > 0, "Events were recorded");
    for (const text of [
      JSON.stringify(jobs),
      JSON.stringify(events),
      JSON.stringify(configMaps),
      readFileSync(operator.logPath, "utf8"),
    ]) {
      assert.ok(!text.includes(SECRET_VALUE));
      assert.ok(!text.includes(Buffer.from(SECRET_VALUE).toString("base64")));
    }
    const reasons = new Set(events.items.map((e) => (e as { reason?: string }).reason));
    for (const reason of ["SecretNotFound", "InvalidSpec", "PrivateWebhookAddress"])
      assert.ok(reasons.has(reason), reason);
  });
});
