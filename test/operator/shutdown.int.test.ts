// Graceful shutdown is bounded: `feedcrawl operator --shutdown-grace=1s` with
// a reconcile blocked on a webhook POST to a loopback backend that never
// answers (timeoutSeconds 600). SIGTERM → it stops taking keys, aborts the
// in-flight work after the 1 s grace, releases its Lease and exits 0 within
// grace + 5 s (the documented bound), instead of waiting on the POST.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import { LEASES } from "../../kube/resources.ts";
import {
  createFeedAsRunner,
  createSecret,
  createCrawlJob as createWebhookJob,
  feedEvent,
  newSigningSecret,
} from "../delivery/kube-helpers.ts";
import { adminKubeConfig, platform } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually } from "../platform/fixtures.ts";
import { type HangingBackend, startHangingBackend } from "./hanging-backend.ts";
import { installCrds, spawnOperator, tempDir } from "./harness.ts";

const GRACE_S = 1;
/** Manager.stop()'s bound after the grace (operator/manager.ts), plus a loaded machine's slack. */
const BOUND_MS = (GRACE_S + 5) * 1000;
const SLACK_MS = 3_000;

describe("graceful shutdown with a webhook POST that never answers", () => {
  const kc = adminKubeConfig();
  const client = new KubeClient(kc);
  const workDir = tempDir("op-shutdown");
  let ns: Disposable;
  let proc: ChildProcess | undefined;
  let backend: HangingBackend;

  before(async () => {
    await installCrds();
    ns = await createNamespace("op-shutdown");
    backend = await startHangingBackend();
  });

  after(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    await backend?.close();
    await ns?.cleanup();
    await client.close();
  });

  test("SIGTERM exits 0 within the grace + 5 s and releases the Lease", async () => {
    const log = join(workDir, "operator.log");
    const running = spawnOperator(
      platform().kubeconfig,
      [
        "--leader-elect",
        `--leader-election-namespace=${ns.name}`,
        "--leader-election-id=feedcrawl-shutdown",
        `--namespace=${ns.name}`,
        "--metrics-addr=127.0.0.1:0",
        "--health-addr=127.0.0.1:0",
        `--shutdown-grace=${GRACE_S}s`,
      ],
      log,
    );
    proc = running;
    const exited = new Promise<number | null>((resolve) => running.once("exit", (code) => resolve(code)));
    await eventually("the operator to start", () => /Operator started/.test(readFileSync(log, "utf8")), 120_000);
    const holder = async () =>
      ((
        await client.getOrUndefined<KubeObject & { spec: { holderIdentity?: string } }>(
          LEASES,
          ns.name,
          "feedcrawl-shutdown",
        )
      )?.spec.holderIdentity ??
        undefined) ||
      undefined;
    await eventually("the operator to hold the Lease", holder, 30_000);

    await createSecret(kc, ns.name, "ingest-webhook", { secret: newSigningSecret() });
    const job = await createWebhookJob(kc, ns.name, "books", {
      url: backend.url,
      timeoutSeconds: 600,
    });
    await createFeedAsRunner(kc, job, feedEvent("s3://crawl-data/books/part-00001.jsonl"));
    await eventually("the webhook POST to be in flight", () => backend.requests.length > 0, 60_000);

    const termAt = Date.now();
    running.kill("SIGTERM");
    const code = await exited;
    const tookMs = Date.now() - termAt;
    process.stdout.write(`# shutdown with a hanging webhook POST: exited ${code} after ${tookMs} ms\n`);
    assert.equal(code, 0, "a graceful exit");
    assert.ok(tookMs < BOUND_MS + SLACK_MS, `exited within the bound (${tookMs} ms)`);
    assert.equal(await holder(), undefined, "the Lease was released");
    const text = readFileSync(log, "utf8");
    assert.match(text, /Released Lease/);
    assert.match(text, /Operator stopped/);
  });
});
