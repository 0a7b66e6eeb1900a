// spec.frontier.redis: accepted by the schema and validate.ts, and carried to
// the runner pod as env whose URL comes from the Secret (never a value the
// operator read).
import assert from "node:assert/strict";
import { test } from "node:test";
import { runnerJob } from "../../operator/crawljob/children.ts";
import { validateCrawlJobSpec } from "../../spec/validate.ts";
import { crawlJob, crawlJobSpec } from "../operator/fixtures.ts";

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped JSON here
type Any = Record<string, any>;

test("spec.frontier.redis validates; an empty frontier and unknown fields do not", async () => {
  const ok = crawlJobSpec({ frontier: { redis: { urlSecretRef: { name: "redis" }, leaseSeconds: 30 } } });
  assert.deepEqual(await validateCrawlJobSpec(ok), []);
  const empty = await validateCrawlJobSpec(crawlJobSpec({ frontier: {} }));
  assert.deepEqual(
    empty.map((e) => e.path),
    ["spec.frontier"],
  );
  const bad = await validateCrawlJobSpec(
    crawlJobSpec({ frontier: { redis: { urlSecretRef: { name: "redis" }, url: "redis://x" } } } as never),
  );
  assert.ok(
    bad.some((e) => e.path.startsWith("spec.frontier.redis")),
    JSON.stringify(bad),
  );
  const short = await validateCrawlJobSpec(
    crawlJobSpec({ frontier: { redis: { urlSecretRef: { name: "r" }, leaseSeconds: 1 } } }),
  );
  assert.ok(
    short.some((e) => e.path === "spec.frontier.redis.leaseSeconds"),
    JSON.stringify(short),
  );
});

test("the runner pod gets the Redis URL from the Secret, the job's key and the lease", () => {
  const job = crawlJob(crawlJobSpec({ frontier: { redis: { urlSecretRef: { name: "redis", key: "uri" } } } }));
  const env = (runnerJob(job, { defaultImage: "x" }) as Any).spec.template.spec.containers[0].env as Any[];
  const byName = Object.fromEntries(env.map((e) => [e.name, e]));
  assert.deepEqual(byName.FEEDCRAWL_FRONTIER_REDIS_URL, {
    name: "FEEDCRAWL_FRONTIER_REDIS_URL",
    valueFrom: { secretKeyRef: { name: "redis", key: "uri" } },
  });
  assert.equal(byName.FEEDCRAWL_FRONTIER_JOB.value, `crawl/books/${job.metadata.uid}`);
  assert.equal(byName.FEEDCRAWL_FRONTIER_LEASE_SECONDS.value, "60");
  const without = (runnerJob(crawlJob(crawlJobSpec({})), { defaultImage: "x" }) as Any).spec.template.spec.containers[0]
    .env as Any[];
  assert.ok(!without.some((e) => e.name.startsWith("FEEDCRAWL_FRONTIER_")));
});
