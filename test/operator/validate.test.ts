import assert from "node:assert/strict";
import { test } from "node:test";
import { checkWebhookUrl, validateCrawlJob } from "../../operator/crawljob/validate.ts";
import { crawlJobSpec } from "./fixtures.ts";

const secrets: Record<string, string[]> = {
  "ingest-webhook": ["secret"],
  "s3-creds": ["accessKeyId", "secretAccessKey"],
  "half-creds": ["accessKeyId"],
};
const lookup = async (_ns: string, name: string) => secrets[name];

test("a valid spec with its Secrets present passes", async () => {
  assert.equal(await validateCrawlJob("crawl", crawlJobSpec(), lookup), undefined);
});

test("webhook URLs: http(s) only, no credentials, no literal private address unless allowed", () => {
  assert.equal(checkWebhookUrl("https://backend.example/x", false), undefined);
  assert.equal(checkWebhookUrl("ftp://backend.example/x", false)?.reason, "InvalidWebhookURL");
  assert.equal(checkWebhookUrl("not a url", false)?.reason, "InvalidWebhookURL");
  assert.equal(checkWebhookUrl("https://user:pw@backend.example/", false)?.reason, "InvalidWebhookURL");
  for (const host of ["127.0.0.1", "10.1.2.3", "192.168.0.10", "169.254.169.254", "[::1]", "[fd00::1]", "localhost"]) {
    const problem = checkWebhookUrl(`http://${host}:8080/ingest`, false);
    assert.equal(problem?.reason, "PrivateWebhookAddress", host);
    assert.equal(problem?.error.path, "spec.ingest.webhook.url");
    assert.equal(checkWebhookUrl(`http://${host}:8080/ingest`, true), undefined, `${host} allowed`);
  }
});

test("missing Secrets and keys are named by field path, without values", async () => {
  const spec = crawlJobSpec({ storage: { s3: { credentialsSecretRef: { name: "nope" } } } });
  const failure = await validateCrawlJob("crawl", spec, lookup);
  assert.equal(failure?.reason, "SecretNotFound");
  assert.match(failure!.message, /spec\.storage\.s3\.credentialsSecretRef\.name: Secret crawl\/nope not found/);

  const half = crawlJobSpec({ storage: { s3: { credentialsSecretRef: { name: "half-creds" } } } });
  const keyFailure = await validateCrawlJob("crawl", half, lookup);
  assert.equal(keyFailure?.reason, "SecretKeyMissing");
  assert.match(keyFailure!.message, /'secretAccessKey'/);

  const webhookKey = crawlJobSpec();
  webhookKey.ingest!.webhook!.signingSecretRef = { name: "ingest-webhook", key: "other" };
  assert.match(
    (await validateCrawlJob("crawl", webhookKey, lookup))!.message,
    /spec\.ingest\.webhook\.signingSecretRef: .*'other'/,
  );
});

test("the spec validator's errors come first and carry field paths", async () => {
  const spec = crawlJobSpec();
  (spec.spider as Record<string, unknown>).startUrls = [];
  const failure = await validateCrawlJob("crawl", spec, lookup);
  assert.equal(failure?.reason, "InvalidSpec");
  assert.match(failure!.message, /spec\.spider\.startUrls/);
});

test("the fields the CRD leaves untyped are checked: the operator does not run the TypeBox schema", async () => {
  // A union of types is x-kubernetes-preserve-unknown-fields in the CRD: the API server lets anything through.
  const badDefault = crawlJobSpec();
  const field = Object.values(badDefault.spider.extract![0]!.fields)[0] as Record<string, unknown>;
  field.default = { not: "a scalar" };
  const failure = await validateCrawlJob("crawl", badDefault, lookup);
  assert.equal(failure?.reason, "InvalidSpec");
  assert.match(failure!.message, /spec\.spider\.extract\[0\]\.fields\.\w+\.default: must be a string/);

  for (const allow of ["yes", 1, [""]]) {
    const spec = crawlJobSpec();
    (spec.spider as Record<string, unknown>).settings = { allowPrivateNetworks: allow };
    const problem = await validateCrawlJob("crawl", spec, lookup);
    assert.equal(problem?.reason, "InvalidSpec", JSON.stringify(allow));
    assert.match(problem!.message, /spec\.spider\.settings\.allowPrivateNetworks/);
  }
  for (const allow of [true, false, ["10.0.0.0/8"]]) {
    const spec = crawlJobSpec();
    (spec.spider as Record<string, unknown>).settings = { allowPrivateNetworks: allow };
    assert.equal(await validateCrawlJob("crawl", spec, lookup), undefined, JSON.stringify(allow));
  }
});
