// The delivery fault tests' harness: a stand-in operator process (the real
// operator/delivery reconciler in test/delivery/delivery-worker.ts) the tests
// can SIGKILL at exact moments, toxiproxy's admin API, and a scene (namespace,
// signing Secret, receiver, CrawlJob, three CrawlFeeds) cleaned up afterwards.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { after } from "node:test";
import type { KubeConfig } from "@kubernetes/client-node";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { PRIVATE_NETWORKS_ENV } from "../../operator/delivery/dispatchers.ts";
import { feedWebhookId } from "../../operator/delivery/index.ts";
import { adminKubeConfig, platform } from "../platform/env.ts";
import { createNamespace, eventually } from "../platform/fixtures.ts";
import {
  createCrawlJob,
  createFeedAsRunner,
  createSecret,
  feedEvent,
  installCrds,
  listFeeds,
  newSigningSecret,
} from "./kube-helpers.ts";
import { type Receiver, startReceiver } from "./receiver.ts";

const root = resolve(import.meta.dirname, "..", "..");

/** A node process logging to a file in the platform's work dir, with the platform's kubeconfig; SIGKILLed by `kill`. */
export class LoggedProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  readonly logFile: string;
  constructor(logName: string, args: string[], env: Record<string, string>, stdin: "pipe" | "ignore") {
    this.logFile = join(platform().workDir, `${logName}-${process.pid}-${Date.now()}.log`);
    const log = openSync(this.logFile, "a");
    this.child = spawn(process.execPath, args, {
      env: { ...process.env, KUBECONFIG: platform().kubeconfig, ...env },
      stdio: [stdin, log, log],
    });
    closeSync(log);
    this.exited = new Promise((done) => this.child.once("exit", () => done()));
  }
  /**
   * Waits until the log shows `marker`. Start-up is not what the tests
   * measure, and on a busy 2-core machine it can take a minute.
   */
  async logged(what: string, marker: string): Promise<void> {
    await eventually(
      `${what} ${this.child.pid} to start (log ${this.logFile})`,
      () => existsSync(this.logFile) && readFileSync(this.logFile, "utf8").includes(marker),
      150_000,
    );
  }
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    await this.exited;
  }
}

/** The stand-in operator process; killed (SIGKILL) at the end whatever happens. */
export class Worker extends LoggedProcess {
  /** `paused`: loads and waits for `go()` (process start-up is seconds on a busy machine). */
  constructor(namespace: string, logName: string, paused = false) {
    const env = {
      FEEDCRAWL_TEST_WORKER_NAMESPACE: namespace,
      FEEDCRAWL_TEST_WORKER_PAUSED: paused ? "1" : "0",
      // The receiver and toxiproxy listen on loopback: the operator-level private-network list allows it.
      [PRIVATE_NETWORKS_ENV]: "127.0.0.0/8",
    };
    super(logName, [join(root, "test/delivery/delivery-worker.ts")], env, "pipe");
  }
  /** Waits until the process has loaded and started its loop. */
  started(): Promise<void> {
    return this.logged("delivery worker", "Delivery worker for namespace");
  }
  go(): void {
    this.child.stdin?.write("go\n");
  }
}

/** toxiproxy's admin API (the platform's server). */
export async function toxiproxy(method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${platform().toxiproxyUrl}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok && res.status !== 404) throw new Error(`toxiproxy ${method} ${path}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? undefined : res.json().catch(() => undefined);
}

export function states(feeds: CrawlFeed[]): string[] {
  return feeds.map((f) => f.status?.delivery?.state ?? "none");
}

export interface Scene {
  kc: KubeConfig;
  namespace: string;
  receiver: Receiver;
  job: CrawlJob;
  feeds: CrawlFeed[];
  /** The feeds' webhook-ids. */
  ids: Set<string>;
  /** Runs at cleanup (reverse order). */
  onCleanup(fn: () => Promise<void>): void;
  startWorker(logName: string, paused?: boolean): Worker;
  /** Every feed Delivered, every received request verified, ids = exactly the feeds' ids. */
  assertAllDeliveredOnce(): Promise<CrawlFeed[]>;
  cleanup(): Promise<void>;
}

/** A namespace with the signing Secret, a receiver, a CrawlJob whose webhook is `url(receiver)`, three CrawlFeeds. */
/**
 * `createScene` for one describe block: every scene it makes is cleaned up in
 * that block's `after` hook, even when a test fails. Call it inside `describe`.
 */
export function sceneFactory(): (...args: Parameters<typeof createScene>) => Promise<Scene> {
  const scenes: Scene[] = [];
  after(async () => {
    for (const s of scenes) await s.cleanup();
  });
  return async (...args) => {
    const s = await createScene(...args);
    scenes.push(s);
    return s;
  };
}

export async function createScene(
  name: string,
  url: (receiver: Receiver, onCleanup: (fn: () => Promise<void>) => void) => Promise<string> | string = (r) => r.url,
): Promise<Scene> {
  const kc = adminKubeConfig();
  await installCrds();
  const cleanups: (() => Promise<void>)[] = [];
  const onCleanup = (fn: () => Promise<void>) => void cleanups.push(fn);
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
  };
  try {
    const secret = newSigningSecret();
    const ns = await createNamespace(name);
    onCleanup(() => ns.cleanup());
    await createSecret(kc, ns.name, "ingest-webhook", { secret });
    const receiver = await startReceiver(secret);
    onCleanup(() => receiver.close());
    const job = await createCrawlJob(kc, ns.name, "books", { url: await url(receiver, onCleanup) });
    const feeds: CrawlFeed[] = [];
    for (const n of [1, 2, 3]) {
      feeds.push(await createFeedAsRunner(kc, job, feedEvent(`s3://crawl-data/books/part-0000${n}.jsonl`)));
    }
    const ids = new Set(feeds.map((f) => feedWebhookId(job.metadata.uid!, f.spec.uri)));
    return {
      kc,
      namespace: ns.name,
      receiver,
      job,
      feeds,
      ids,
      onCleanup,
      startWorker(logName, paused = false) {
        const worker = new Worker(ns.name, logName, paused);
        onCleanup(() => worker.kill());
        return worker;
      },
      async assertAllDeliveredOnce() {
        const settled = await eventually(
          "every CrawlFeed Delivered",
          async () => {
            const list = await listFeeds(kc, ns.name);
            return list.length === ids.size && list.every((f) => f.status?.delivery?.state === "Delivered")
              ? list
              : undefined;
          },
          60_000,
        );
        assert.ok(
          receiver.received.every((r) => r.verified),
          "every request carried a valid signature",
        );
        assert.deepEqual(receiver.distinctIds(), ids, "distinct webhook-ids = the CrawlFeeds, no stranger");
        return settled;
      },
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
