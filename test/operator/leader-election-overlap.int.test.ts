// Leader election when the leader's link to the apiserver goes slow or silent
// (toxiproxy between the leader and the real kube-apiserver; the follower
// talks to it directly). Timings as in issue 13's finding: lease 1.5 s, renew
// deadline 1 s, retry 0.2 s. Measured: the overlap, the time both replicas
// consider themselves leader (their callbacks, and isLeader sampled every
// 5 ms), and the Lease versions the apiserver recorded (a watch): the old
// leader must stop leading before the new one starts, and none of its writes
// may land after the new one's first.
import assert from "node:assert/strict";
import { isIP } from "node:net";
import { after, before, describe, test } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import { LEASES } from "../../kube/resources.ts";
import type { Manager } from "../../operator/manager.ts";
import { LeaderElector } from "../../operator/runtime/leader-election.ts";
import { toxiproxy } from "../delivery/fault-harness.ts";
import {
  createFeedAsRunner,
  createSecret,
  createCrawlJob as createWebhookJob,
  feedEvent,
  newSigningSecret,
} from "../delivery/kube-helpers.ts";
import { adminKubeConfig, platform } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually } from "../platform/fixtures.ts";
import { startHangingBackend } from "./hanging-backend.ts";
import { installCrds, type RunningOperator, startOperator, tempDir } from "./harness.ts";

const TIMINGS = { leaseDurationMs: 1_500, renewDeadlineMs: 1_000, retryPeriodMs: 200 };

/** The admin kube config, with the server replaced by `listen` (a toxiproxy proxy in front of the apiserver). */
function kubeConfigVia(listen: string): KubeConfig {
  const admin = adminKubeConfig();
  const cluster = admin.getCurrentCluster()!;
  const server = new URL(cluster.server);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: admin.clusters.map((c) =>
      // The apiserver's certificate names its own address; an IP needs no server name (the proxy's is the same host).
      c.name === cluster.name
        ? { ...c, server: `https://${listen}`, ...(isIP(server.hostname) ? {} : { tlsServerName: server.hostname }) }
        : c,
    ),
    users: admin.users,
    contexts: admin.contexts,
    currentContext: admin.getCurrentContext(),
  });
  return kc;
}

type Toxic = { name: string; type: string; stream?: string; attributes: Record<string, number> };
const LATENCY: Toxic[] = [
  { name: "lag-up", type: "latency", stream: "upstream", attributes: { latency: 2_000 } },
  { name: "lag-down", type: "latency", stream: "downstream", attributes: { latency: 2_000 } },
];
// timeout 0: data is dropped and the connection never closes, until the toxic goes.
const BLACKHOLE: Toxic[] = [{ name: "blackhole", type: "timeout", stream: "downstream", attributes: { timeout: 0 } }];

interface LeaseVersion {
  holder: string;
  at: number;
}

/** Every version of the Lease the apiserver records, from a watch. */
function watchLease(client: KubeClient, namespace: string, name: string) {
  const versions: LeaseVersion[] = [];
  const ac = new AbortController();
  let failure: Error | undefined;
  const done = (async () => {
    const list = await client.list(LEASES, { namespace, fieldSelector: `metadata.name=${name}` });
    for await (const ev of client.watch<KubeObject & { spec: { holderIdentity?: string } }>(LEASES, {
      namespace,
      fieldSelector: `metadata.name=${name}`,
      resourceVersion: list.metadata.resourceVersion!,
      signal: ac.signal,
    })) {
      if (ev.type === "ADDED" || ev.type === "MODIFIED") {
        versions.push({ holder: ev.object.spec.holderIdentity ?? "", at: performance.now() });
      }
    }
  })().catch((err) => {
    if (!ac.signal.aborted) failure = err as Error;
  });
  return {
    versions,
    get failure() {
      return failure;
    },
    async stop() {
      ac.abort();
      await done;
    },
  };
}

/** When each replica started and stopped leading, and how long isLeader was true on both at once. */
class OverlapProbe {
  started = new Map<string, number>();
  stopped = new Map<string, number>();
  bothSamples = 0;
  #timer: NodeJS.Timeout;
  constructor(isLeader: () => [boolean, boolean]) {
    this.#timer = setInterval(() => {
      const [a, b] = isLeader();
      if (a && b) this.bothSamples += 1;
    }, 5);
  }
  mark(map: "started" | "stopped", who: string) {
    this[map].set(who, performance.now());
  }
  close() {
    clearInterval(this.#timer);
  }
}

const silent = pino({ level: "silent" });

describe("leader election with the leader's apiserver link slowed or cut (toxiproxy)", () => {
  const direct = new KubeClient(adminKubeConfig());
  let ns: Disposable;
  let proxyName = "";
  let listen = "";

  before(async () => {
    ns = await createNamespace("le-overlap");
    proxyName = `le-overlap-${process.pid}-${Date.now()}`;
    const upstream = new URL(platform().apiServerUrl);
    const proxy = (await toxiproxy("POST", "/proxies", {
      name: proxyName,
      listen: "127.0.0.1:0",
      upstream: `${upstream.hostname}:${upstream.port}`,
      enabled: true,
    })) as { listen: string };
    listen = proxy.listen;
  });

  after(async () => {
    await toxiproxy("DELETE", `/proxies/${proxyName}`).catch(() => {});
    await ns?.cleanup();
    await direct.close();
  });

  const addToxics = async (toxics: Toxic[]) => {
    for (const t of toxics) await toxiproxy("POST", `/proxies/${proxyName}/toxics`, { toxicity: 1, ...t });
  };
  const removeToxics = async (toxics: Toxic[]) => {
    for (const t of toxics) await toxiproxy("DELETE", `/proxies/${proxyName}/toxics/${t.name}`).catch(() => {});
  };

  /** A leads through the proxy, B follows directly; the toxics hit A's link; B takes over. */
  async function electorScenario(label: string, toxics: Toxic[]) {
    const lease = `overlap-${label}`;
    const viaProxy = new KubeClient(kubeConfigVia(listen));
    const watch = watchLease(direct, ns.name, lease);
    const electors: Record<"a" | "b", LeaderElector> = {} as never;
    const probe = new OverlapProbe(() => [electors.a?.isLeader ?? false, electors.b?.isLeader ?? false]);
    const make = (who: "a" | "b", client: KubeClient) =>
      new LeaderElector({
        client,
        namespace: ns.name,
        name: lease,
        identity: `replica-${who}`,
        logger: silent,
        ...TIMINGS,
        onStartedLeading: () => probe.mark("started", who),
        onStoppedLeading: () => probe.mark("stopped", who),
      });
    electors.a = make("a", viaProxy);
    electors.b = make("b", direct);
    try {
      electors.a.start();
      await eventually("A to lead", () => probe.started.has("a"), 15_000);
      electors.b.start();
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(electors.b.isLeader, false, "B follows while A renews");
      const cutAt = performance.now();
      await addToxics(toxics);
      await eventually("B to take over", () => probe.started.has("b"), 30_000);
      // The old code noticed only when its hung request ended (30 s client timeout).
      await eventually("A to stop leading", () => probe.stopped.has("a"), 45_000);
      await new Promise((r) => setTimeout(r, 2_500)); // late writes of A would show up by now
      const aStopped = probe.stopped.get("a")! - cutAt;
      const bStarted = probe.started.get("b")! - cutAt;
      const bFirst = watch.versions.findIndex((v) => v.holder === "replica-b");
      const aWritesAfter = watch.versions.slice(bFirst + 1).filter((v) => v.holder === "replica-a").length;
      const overlapMs = Math.max(0, aStopped - bStarted);
      process.stdout.write(
        `# ${label}: A stopped leading ${(aStopped / 1000).toFixed(2)} s after the cut, B started ${(bStarted / 1000).toFixed(2)} s; ` +
          `overlap ${overlapMs.toFixed(0)} ms by callbacks, ${probe.bothSamples * 5} ms by isLeader samples; ` +
          `Lease writes by A after B's first: ${aWritesAfter}\n`,
      );
      assert.ok(bFirst >= 0, `the watch saw B's Lease (${watch.failure?.message ?? "no watch error"})`);
      assert.ok(
        aStopped < bStarted,
        `A stopped leading (${aStopped.toFixed(0)} ms) before B started (${bStarted.toFixed(0)} ms)`,
      );
      assert.equal(probe.bothSamples, 0, "never both isLeader");
      assert.equal(aWritesAfter, 0, "no Lease write of A after B acquired");
      assert.ok(
        aStopped <= TIMINGS.renewDeadlineMs + 500,
        `A stopped within the renew deadline (${aStopped.toFixed(0)} ms)`,
      );
    } finally {
      probe.close();
      await removeToxics(toxics);
      await Promise.allSettled([electors.a.stop(), electors.b.stop()]);
      await watch.stop();
      await viaProxy.close().catch(() => {});
    }
  }

  test("2 s of latency each way on the leader's link: it stops leading before the other starts", () =>
    electorScenario("latency", LATENCY));

  test("a blackholed leader link: it stops leading at the renew deadline, before the other starts", () =>
    electorScenario("blackhole", BLACKHOLE));
});

describe("an operator that loses its Lease with a webhook POST in flight", () => {
  const kc = adminKubeConfig();
  const direct = new KubeClient(kc);
  let ns: Disposable;
  let proxyName = "";
  let listen = "";
  const workDir = tempDir("le-manager");

  before(async () => {
    await installCrds();
    ns = await createNamespace("le-manager");
    proxyName = `le-manager-${process.pid}-${Date.now()}`;
    const upstream = new URL(platform().apiServerUrl);
    listen = (
      (await toxiproxy("POST", "/proxies", {
        name: proxyName,
        listen: "127.0.0.1:0",
        upstream: `${upstream.hostname}:${upstream.port}`,
        enabled: true,
      })) as { listen: string }
    ).listen;
  });

  after(async () => {
    await toxiproxy("DELETE", `/proxies/${proxyName}`).catch(() => {});
    await ns?.cleanup();
    await direct.close();
  });

  test("stops its workers and leads no more before the follower takes over; never writes the Lease after", async () => {
    const backend = await startHangingBackend();
    const lease = "overlap-manager";
    const watch = watchLease(direct, ns.name, lease);
    let fatalAt: number | undefined;
    let stoppedAt: number | undefined;
    let bStartedAt: number | undefined;
    let op: RunningOperator | undefined;
    let stopping: Promise<void> | undefined;
    const stopOp = () => (stopping ??= op?.stop() ?? Promise.resolve());
    const follower = new LeaderElector({
      client: direct,
      namespace: ns.name,
      name: lease,
      identity: "replica-b",
      logger: silent,
      ...TIMINGS,
      onStartedLeading: () => {
        bStartedAt = performance.now();
      },
      onStoppedLeading: () => {},
    });
    try {
      op = await startOperator(kubeConfigVia(listen), {
        namespaces: [ns.name],
        workDir,
        leaderElect: true,
        leaderElectionNamespace: ns.name,
        leaderElectionId: lease,
        identity: "replica-a",
        ...TIMINGS,
        // What operator/cli.ts does on onFatal: a (bounded) stop, then exit 1.
        onFatal: () => {
          fatalAt = performance.now();
          void stopOp().then(() => {
            stoppedAt = performance.now();
          });
        },
      });
      const manager: Manager = op.manager;
      await eventually("the operator to lead", () => manager.isLeader, 30_000);
      follower.start();

      // A webhook POST in flight on the leader: a closed CrawlFeed whose backend never answers.
      const secret = newSigningSecret();
      await createSecret(kc, ns.name, "ingest-webhook", { secret });
      const job = await createWebhookJob(kc, ns.name, "books", { url: backend.url, timeoutSeconds: 600 });
      await createFeedAsRunner(kc, job, feedEvent("s3://crawl-data/books/part-00001.jsonl"));
      await eventually("the POST to reach the backend", () => backend.requests.length > 0, 60_000);

      const cutAt = performance.now();
      await toxiproxy("POST", `/proxies/${proxyName}/toxics`, { toxicity: 1, ...BLACKHOLE[0] });
      await eventually("the follower to take over", () => bStartedAt !== undefined, 30_000);
      assert.ok(fatalAt !== undefined, "onFatal ran before the follower took over");
      assert.ok(fatalAt < bStartedAt!, "the operator gave up before the follower started");
      assert.equal(manager.isLeader, false);
      await stopOp();
      const stopMs = stoppedAt! - fatalAt;
      await new Promise((r) => setTimeout(r, 1_000));
      const bFirst = watch.versions.findIndex((v) => v.holder === "replica-b");
      const aWritesAfter = watch.versions.slice(bFirst + 1).filter((v) => v.holder === "replica-a").length;
      const postClosed = backend.closed[0];
      process.stdout.write(
        `# manager: onFatal ${((fatalAt - cutAt) / 1000).toFixed(2)} s after the cut, follower started ` +
          `${((bStartedAt! - cutAt) / 1000).toFixed(2)} s; stop() took ${(stopMs / 1000).toFixed(2)} s; ` +
          `the hanging POST's connection closed ${postClosed === undefined ? "never (so far)" : `${((postClosed - cutAt) / 1000).toFixed(2)} s`} after the cut; ` +
          `Lease writes by the old leader after the new one's first: ${aWritesAfter}\n`,
      );
      assert.ok(bFirst >= 0);
      assert.equal(aWritesAfter, 0);
      assert.ok(stopMs < 5_000 + 2_000, `stop() after a lost Lease is bounded (${stopMs.toFixed(0)} ms)`);
      assert.ok(
        postClosed !== undefined && postClosed < bStartedAt!,
        "the in-flight POST was aborted before the follower started",
      );
    } finally {
      await toxiproxy("DELETE", `/proxies/${proxyName}/toxics/blackhole`).catch(() => {});
      await stopOp().catch(() => {});
      await follower.stop();
      await watch.stop();
      await backend.close();
    }
  });
});
