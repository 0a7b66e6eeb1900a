// Two `feedcrawl operator --leader-elect` processes against the real API
// server: only the Lease holder acts; SIGKILL it and the other takes over
// (controller-runtime timings: lease 15 s, renew 10 s, retry 2 s → about
// 15–17 s); a SIGTERMed leader releases the Lease on its way out.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import { EVENTS, JOBS, LEASES } from "../../kube/resources.ts";
import { adminKubeConfig, platform } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually } from "../platform/fixtures.ts";
import { createCrawlJob, installCrds, spawnOperator, tempDir } from "./harness.ts";

// biome-ignore lint/suspicious/noExplicitAny: objects read back from the API
type Any = Record<string, any>;

const spec = {
  spider: {
    name: "books",
    startUrls: ["https://books.example/"],
    extract: [{ name: "product", itemSelector: "article", fields: { title: { selector: "h1", text: true } } }],
  },
  feeds: { "s3://crawl-data/%(name)s/part-%(batch_id)05d.jsonl": { format: "jsonlines", batchItemCount: 10 } },
};

describe("leader election between two operator processes", () => {
  const client = new KubeClient(adminKubeConfig());
  const workDir = tempDir("op-leader");
  let ns: Disposable;
  const procs: { proc: ChildProcess; log: string }[] = [];

  const exited = (proc: ChildProcess) =>
    new Promise<number | null>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) resolve(proc.exitCode);
      else proc.once("exit", (code) => resolve(code));
    });

  before(async () => {
    await installCrds();
    ns = await createNamespace("op-leader");
    for (const name of ["a", "b"]) {
      const log = join(workDir, `operator-${name}.log`);
      const proc = spawnOperator(
        platform().kubeconfig,
        [
          "--leader-elect",
          `--leader-election-namespace=${ns.name}`,
          "--leader-election-id=feedcrawl-test",
          `--namespace=${ns.name}`,
          "--metrics-addr=127.0.0.1:0",
          "--health-addr=127.0.0.1:0",
        ],
        log,
      );
      procs.push({ proc, log });
    }
  });

  after(async () => {
    for (const { proc } of procs) if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    await Promise.all(procs.map(({ proc }) => exited(proc)));
    await ns?.cleanup();
    await client.close();
  });

  const holder = async () => {
    const lease = await client.getOrUndefined<Any & KubeObject>(LEASES, ns.name, "feedcrawl-test");
    return (lease?.spec?.holderIdentity as string | undefined) || undefined;
  };
  const procOf = (identity: string) => procs.find(({ proc }) => identity.includes(`_${proc.pid}_`))!;

  test("only the leader acts; killing it hands over to the other within the lease time", async () => {
    // Two Node processes starting on a busy machine can take a while.
    await eventually(
      "both operators started",
      () => procs.every(({ log }) => /Operator started/.test(readFileSync(log, "utf8"))),
      120_000,
    );
    const first = await eventually("a Lease holder", holder, 30_000);
    const leader = procOf(first);
    const follower = procs.find((p) => p !== leader)!;
    assert.ok(leader, `holder ${first} is one of the two processes`);

    await createCrawlJob(client, ns.name, "one", spec);
    await eventually("the runner Job of one", () => client.getOrUndefined(JOBS, ns.name, "one-runner"));
    const events = await eventually("Events about one", async () => {
      const list = await client.list(EVENTS, { namespace: ns.name });
      return list.items.length > 0 ? list : undefined;
    });
    const hosts = new Set(events.items.map((e) => (e as Any).source?.host));
    assert.deepEqual([...hosts], [first], "every Event came from the leader");
    assert.match(readFileSync(follower.log, "utf8"), /Waiting for the leader Lease/);
    assert.doesNotMatch(readFileSync(follower.log, "utf8"), /Starting controllers/);

    const killedAt = Date.now();
    leader.proc.kill("SIGKILL");
    await exited(leader.proc);
    await createCrawlJob(client, ns.name, "two", spec);
    await eventually(
      "the follower to take the Lease",
      async () => {
        const h = await holder();
        return h && h !== first ? h : undefined;
      },
      25_000,
    );
    await eventually(
      "the runner Job of two, made by the new leader",
      () => client.getOrUndefined(JOBS, ns.name, "two-runner"),
      10_000,
    );
    const takeoverSeconds = (Date.now() - killedAt) / 1000;
    process.stdout.write(`# leader takeover after SIGKILL: ${takeoverSeconds.toFixed(1)} s\n`);
    assert.match(readFileSync(follower.log, "utf8"), /Starting controllers/);
  });

  test("a SIGTERMed leader shuts down gracefully and releases the Lease", async () => {
    const current = await eventually("a Lease holder", holder, 60_000);
    const leader = procOf(current);
    // No other candidate left, so the cleared Lease is observable.
    for (const other of procs) {
      if (other !== leader && other.proc.exitCode === null && other.proc.signalCode === null) {
        other.proc.kill("SIGKILL");
        await exited(other.proc);
      }
    }
    leader.proc.kill("SIGTERM");
    assert.equal(await exited(leader.proc), 0);
    assert.equal(await holder(), undefined, "holderIdentity cleared");
    assert.match(readFileSync(leader.log, "utf8"), /Released Lease/);
  });
});
