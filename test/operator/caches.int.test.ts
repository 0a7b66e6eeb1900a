// The CrawlJob reconcile reads from informer caches, on the real API server
// with the operator in-process (no kubelet, no Job controller: the runner Job
// only has to exist):
// - a Secret created after its CrawlJob starts it within seconds (the Secret
//   informer and the Secret → CrawlJob index), with the resync at 10 minutes
//   so it cannot be what starts it;
// - a runner's stats patches cost the operator no GET of Secrets,
//   ServiceAccounts, Roles, RoleBindings or ConfigMaps — not even of the
//   spider's ConfigMap, which validation GETs: they rerun no check — and
//   still reach the aggregated status.stats (the operator's own KubeClient is
//   instrumented: the shared API server's request counters mix every test
//   file's requests);
// - a spec without feeds is refused at admission, naming spec.feeds.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { CrawlJobSpec } from "../../crds/schema/crawljob.ts";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import { CONFIGMAPS, CRAWLJOBS, JOBS } from "../../kube/resources.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually } from "../platform/fixtures.ts";
import { crawlJobSpec } from "./fixtures.ts";
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

const CHECKED = ["secrets", "serviceaccounts", "roles", "rolebindings", "configmaps"];

const spec = (secret: string): CrawlJobSpec =>
  crawlJobSpec({
    ingest: { webhook: { url: "https://backend.example/bulk-ingest", signingSecretRef: { name: secret } } },
  });

describe("CrawlJob reads from caches", () => {
  const kc = adminKubeConfig();
  const client = new KubeClient(kc);
  const workDir = tempDir("op-caches");
  let ns: Disposable;
  let operator: RunningOperator;
  /** Every request the operator's client sent, as `METHOD path`. */
  const requests: string[] = [];

  before(async () => {
    await installCrds();
    ns = await createNamespace("op-caches");
    operator = await startOperator(kc, { namespaces: [ns.name], workDir, resyncMs: 10 * 60_000 });
    const opClient = operator.manager.client;
    const send = opClient.request.bind(opClient);
    opClient.request = ((method, path, init) => {
      requests.push(`${method} ${path}`);
      return send(method, path, init);
    }) as typeof opClient.request;
  });

  after(async () => {
    await operator?.stop();
    await ns?.cleanup();
    await client.close();
  });

  test("a Secret created 5 s after its CrawlJob starts the runner within seconds, not at the resync", async (t) => {
    const created = Date.now();
    await createCrawlJob(client, ns.name, "late", spec("late-webhook"));
    const refused = await untilCondition(client, ns.name, "late", "Validated", "False");
    assert.equal(condition(refused, "Validated")?.reason, "SecretNotFound");
    assert.equal(await client.getOrUndefined(JOBS, ns.name, "late-runner"), undefined);

    await new Promise((resolve) => setTimeout(resolve, Math.max(0, created + 5_000 - Date.now())));
    const secretAt = Date.now();
    await createSecret(client, ns.name, "late-webhook", { secret: "whsec_dGVzdHNlY3JldA==" });
    await eventually("the runner Job of late", () => client.getOrUndefined(JOBS, ns.name, "late-runner"), 60_000);
    const startedMs = Date.now() - secretAt;
    const valid = await untilCondition(client, ns.name, "late", "Validated", "True", 60_000);
    t.diagnostic(`runner Job ${startedMs} ms after the Secret; Validated=True after ${Date.now() - secretAt} ms`);
    assert.equal(condition(valid, "Validated")?.reason, "Valid");
    // Generous for a loaded machine; the resync that used to start it is 10 minutes away.
    assert.ok(startedMs < 30_000, `runner Job after ${startedMs} ms`);
  });

  test("stats patches rerun no check: no GET of Secrets, children or the spider's ConfigMap; status.stats follows", async (t) => {
    await createSecret(client, ns.name, "stats-webhook", { secret: "whsec_dGVzdHNlY3JldA==" });
    // Validation GETs spider.moduleConfigMapRef's ConfigMap (not watched): a GET of it means validation ran.
    await client.create(CONFIGMAPS, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "stats-code", namespace: ns.name },
      data: { "parse.mjs": "export function parse() { return []; }\n" },
    } as KubeObject);
    const base = spec("stats-webhook");
    const withModule = {
      ...base,
      spider: { ...base.spider, moduleConfigMapRef: { name: "stats-code", key: "parse.mjs" } },
    };
    await createCrawlJob(client, ns.name, "stats", withModule);
    await eventually("the runner Job of stats", () => client.getOrUndefined(JOBS, ns.name, "stats-runner"));
    await untilCondition(client, ns.name, "stats", "Validated", "True");
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // the children's own events settle

    const from = requests.length;
    const patches = 10;
    for (let i = 1; i <= patches; i++) {
      // What a runner shard sends every 5 s (runner/report/stats-reporter.ts).
      const stats = { requests: i, responses: i, pages: i, items: 10 * i, itemsDropped: 0, errors: 0, bytes: 100 * i };
      await client.patch(
        CRAWLJOBS,
        ns.name,
        "stats",
        { status: { shardStats: { "0": stats } } },
        {
          subresource: "status",
        },
      );
      await eventually(`status.stats.requests = ${i}`, async () => {
        const job = await readCrawlJob(client, ns.name, "stats");
        return job.status?.stats?.requests === i && job.status.stats.items === 10 * i;
      });
    }
    const window = requests.slice(from);
    const gets = window.filter((r) => r.startsWith("GET "));
    const checked = gets.filter((r) => CHECKED.some((plural) => r.includes(`/namespaces/${ns.name}/${plural}`)));
    t.diagnostic(
      `${patches} stats patches: ${window.length} operator requests (${gets.length} GET, ${checked.length} GET of ${CHECKED.join("/")}): ${JSON.stringify(countBy(window))}`,
    );
    assert.deepEqual(checked, []);
  });

  test("a spec without feeds is refused at admission, naming spec.feeds", async () => {
    const { feeds: _feeds, ...noFeeds } = spec("stats-webhook");
    await assert.rejects(createCrawlJob(client, ns.name, "nofeeds", noFeeds), (err: Error) => {
      assert.match(err.message, /spec\.feeds: Required value: at least one feed is required/);
      return true;
    });
    await assert.rejects(createCrawlJob(client, ns.name, "nofeeds", { ...noFeeds, feeds: {} }), /spec\.feeds/);
  });
});

/** `METHOD /path` counts, names and namespaces cut off, for the diagnostic. */
function countBy(requests: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of requests) {
    const key = r.replace(/\/namespaces\/[^/]+\/([a-z]+)\/[^/]+/, "/$1/NAME").replace(/\/namespaces\/[^/]+/, "");
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
