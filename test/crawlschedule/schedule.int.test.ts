// CrawlSchedules on the real API server (and its garbage collector), with the
// schedule controller as the manager wires it (operator/crawlschedule/setup.ts).
// One test runs on the real clock (a `* * * * *` schedule creates a CrawlJob
// within the minute); the others move an injected clock and drive each
// reconcile themselves, so minutes and hours pass in milliseconds. The test
// plays the CrawlJob controller: a run finishes when it writes its status.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import type { CrawlScheduleSpec } from "../../crds/schema/crawlschedule.ts";
import {
  CRAWLSCHEDULE_LABEL,
  REPLACED_BY_ANNOTATION,
  RUN_NOW_ANNOTATION,
  SCHEDULED_TIME_ANNOTATION,
} from "../../crds/schema/names.ts";
import { KubeClient } from "../../kube/client.ts";
import { CRAWLJOBS, CRAWLSCHEDULES } from "../../kube/resources.ts";
import { createCrawlScheduleReconciler, MAX_REQUEUE_MS } from "../../operator/crawlschedule/reconciler.ts";
import { getCondition } from "../../operator/runtime/conditions.ts";
import type { ReconcileRequest } from "../../operator/runtime/controller.ts";
import { EventRecorder } from "../../operator/runtime/events.ts";
import { crawlJobSpec } from "../operator/fixtures.ts";
import { installCrds, tempDir } from "../operator/harness.ts";
import { REPO_ROOT } from "../operator/kubelet.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually, kubectl } from "../platform/fixtures.ts";
import {
  createSchedule,
  eventsOf,
  finish,
  installScheduleCrd,
  jobsOf,
  readSchedule,
  type ScheduleOperator,
  startScheduleOperator,
  testClock,
} from "./harness.ts";

const MINUTE = 60_000;
const silent = pino({ level: "silent" });
/** The first multiple of `minutes` after `at`. */
const boundary = (at: Date, minutes: number) =>
  new Date(Math.floor(at.getTime() / (minutes * MINUTE) + 1) * minutes * MINUTE);
const plus = (at: Date, ms: number) => new Date(at.getTime() + ms);
const minuteOf = (at: Date) => Math.floor(at.getTime() / MINUTE);

describe("CrawlSchedule (real API server, schedule controller via setup.ts)", () => {
  const client = new KubeClient(adminKubeConfig());
  const workDir = tempDir("sched");
  const clock = testClock(new Date());
  let realNs: Disposable;
  let ns: Disposable;
  let real: ScheduleOperator;
  let fake: ScheduleOperator;

  type Spec = Omit<CrawlScheduleSpec, "crawlJobTemplate">;
  const create = async (name: string, spec: Spec, namespace = ns.name) => {
    const s = await createSchedule(client, namespace, name, spec, crawlJobSpec());
    return { name, created: new Date(s.metadata.creationTimestamp!) };
  };
  /** Reconciles `name` on the test's clock until `check` holds (the caches may lag behind a write). */
  const reconcileUntil = <T>(what: string, name: string, check: () => Promise<T | undefined | false>) =>
    eventually(what, async () => {
      await fake.controller.processKey(`${ns.name}/${name}`);
      return check();
    });
  const jobs = (name: string) => jobsOf(client, ns.name, name);
  /** Reconciles until the schedule has (at least) `count` CrawlJobs; returns them, oldest first. */
  const untilJobs = (what: string, name: string, count: number) =>
    reconcileUntil(what, name, async () => {
      const list = await jobs(name);
      return list.length >= count ? list : undefined;
    });
  const reasons = async (name: string) => (await eventsOf(client, ns.name, name)).map((e) => e.reason);

  before(async () => {
    await installCrds();
    await installScheduleCrd();
    realNs = await createNamespace("sched-real");
    ns = await createNamespace("sched-clock");
    real = await startScheduleOperator(client, realNs.name, workDir);
    fake = await startScheduleOperator(client, ns.name, workDir, { now: clock.now, workers: false });
  });

  after(async () => {
    await real?.stop();
    await fake?.stop();
    await realNs?.cleanup();
    await ns?.cleanup();
    await client.close();
  });

  test("the API server validates crawlJobTemplate with the CrawlJob schema (CEL rules included)", async () => {
    const bad = crawlJobSpec();
    bad.spider.startUrls = ["ftp://books.example/"];
    await assert.rejects(
      createSchedule(client, ns.name, "bad-template", { schedule: "@daily" }, bad),
      /every start URL must be an http:\/\/ or https:\/\/ URL/,
    );
    await assert.rejects(
      createSchedule(client, ns.name, "bad-tz", { schedule: "CRON_TZ=UTC 0 0 * * *" }, crawlJobSpec()),
      /spec.timeZone/,
    );
    await assert.rejects(
      createSchedule(client, ns.name, "x".repeat(43), { schedule: "@daily" }, crawlJobSpec()),
      /at most 42 characters/,
    );
    // The README's example is a valid CrawlSchedule.
    const out = await kubectl([
      "apply",
      "--dry-run=server",
      "-n",
      ns.name,
      "-f",
      join(REPO_ROOT, "examples/crawlschedule.yaml"),
    ]);
    assert.match(out, /crawlschedule.feedcrawl.io\/books-nightly created \(server dry run\)/);
  });

  test("a schedule every minute creates a CrawlJob within the minute (real clock)", { timeout: 150_000 }, async () => {
    const { name } = await create("every-minute", { schedule: "* * * * *", concurrencyPolicy: "Forbid" }, realNs.name);
    const started = Date.now();
    const [job] = await eventually(
      "the first run's CrawlJob",
      async () => {
        const list = await jobsOf(client, realNs.name, name);
        return list.length > 0 ? list : undefined;
      },
      90_000,
    );
    const waitedMs = Date.now() - started;
    console.log(`# every-minute: first CrawlJob ${job!.metadata.name} after ${(waitedMs / 1000).toFixed(1)} s`);
    assert.ok(waitedMs < 75_000, `created ${waitedMs} ms after the schedule (within the minute, plus slack)`);
    const scheduled = new Date(job!.metadata.annotations![SCHEDULED_TIME_ANNOTATION]!);
    assert.equal(scheduled.getUTCSeconds(), 0, "the scheduled time is a whole minute");
    assert.equal(job!.metadata.name, `${name}-${minuteOf(scheduled)}`);
    assert.equal(job!.metadata.labels![CRAWLSCHEDULE_LABEL], name);
    const owner = job!.metadata.ownerReferences![0]!;
    assert.equal(owner.kind, "CrawlSchedule");
    assert.equal(owner.name, name);
    assert.equal(owner.controller, true);

    const s = await eventually("status.active", async () => {
      const s = await readSchedule(client, realNs.name, name);
      return s.status?.activeCount === 1 ? s : undefined;
    });
    assert.equal(s.status!.lastScheduleTime, job!.metadata.annotations![SCHEDULED_TIME_ANNOTATION]);
    assert.deepEqual(
      s.status!.active!.map((r) => r.name),
      [job!.metadata.name],
    );

    // The run finishes: the schedule notes it (Event, lastSuccessfulTime, no longer active).
    await finish(client, job!, "Succeeded");
    await eventually("lastSuccessfulTime", async () => {
      const s = await readSchedule(client, realNs.name, name);
      return s.status?.lastSuccessfulTime && s.status.activeCount === 0 ? s : undefined;
    });
    const events = await eventsOf(client, realNs.name, name);
    const created = events.find((e) => e.reason === "SuccessfulCreate");
    assert.match(created?.message ?? "", new RegExp(`Created CrawlJob ${job!.metadata.name} for the run scheduled at`));
    const saw = await eventually("SawCompletedJob", async () =>
      (await eventsOf(client, realNs.name, name)).find((e) => e.reason === "SawCompletedJob"),
    );
    assert.match(saw.message, /Succeeded \(FeedsDelivered\).*2\/2 feed files delivered/);

    // What kubectl shows: the schedule's columns, and which schedule made the CrawlJob.
    await client.patch(CRAWLSCHEDULES, realNs.name, name, { spec: { suspend: true } });
    const table = await kubectl(["get", "crawlsched", "-n", realNs.name]);
    assert.match(table, /NAME\s+SCHEDULE\s+SUSPEND\s+ACTIVE\s+LAST SCHEDULE\s+AGE/);
    const wide = await kubectl(["get", "crawl", "-n", realNs.name, "-o", "wide"]);
    assert.match(wide, new RegExp(`${job!.metadata.name}\\s.*\\s${name}\\s*$`, "m"));
    const describe = await kubectl(["describe", "crawlschedule", "-n", realNs.name, name]);
    assert.match(describe, /SuccessfulCreate/);
    assert.match(describe, /SawCompletedJob/);
  });

  test("Forbid skips a run while one is active; the skipped run starts once the active one ends", async () => {
    const { name, created } = await create("forbid", { schedule: "*/5 * * * *", concurrencyPolicy: "Forbid" });
    const t1 = boundary(created, 5);
    clock.set(plus(t1, 10_000));
    const [first] = await untilJobs("the first run", name, 1);
    assert.equal(first!.metadata.name, `${name}-${minuteOf(t1)}`);

    clock.set(plus(t1, 5 * MINUTE + 10_000));
    await reconcileUntil("JobAlreadyActive", name, async () => (await reasons(name)).includes("JobAlreadyActive"));
    assert.equal((await jobs(name)).length, 1, "no second run while the first is active");

    await finish(client, first!, "Succeeded", plus(t1, 5 * MINUTE + 20_000));
    const list = await untilJobs("the held-back run", name, 2);
    const second = list.find((j) => j.metadata.name !== first!.metadata.name)!;
    assert.equal(
      second.metadata.annotations![SCHEDULED_TIME_ANNOTATION],
      plus(t1, 5 * MINUTE)
        .toISOString()
        .replace(".000", ""),
    );
    assert.ok((await reasons(name)).includes("SawCompletedJob"));
  });

  test("history limits prune the oldest finished CrawlJobs", async () => {
    const { name, created } = await create("history", {
      schedule: "* * * * *",
      successfulJobsHistoryLimit: 1,
      failedJobsHistoryLimit: 1,
    });
    const t = boundary(created, 1);
    const names: string[] = [];
    for (let i = 0; i < 4; i++) {
      clock.set(plus(t, i * MINUTE + 5_000));
      const job = await reconcileUntil(`run ${i}`, name, async () =>
        (await jobs(name)).find((j) => j.metadata.name === `${name}-${minuteOf(t) + i}`),
      );
      names.push(job.metadata.name!);
      await finish(client, job, i % 2 === 0 ? "Succeeded" : "Failed", plus(t, i * MINUTE + 30_000));
    }
    // Runs 0 and 2 succeeded, 1 and 3 failed: the newest of each is kept.
    const kept = await reconcileUntil("pruned to the limits", name, async () => {
      const left = (await jobs(name)).map((j) => j.metadata.name!);
      return left.length === 2 ? left : undefined;
    });
    assert.deepEqual(kept.sort(), [names[2], names[3]].sort());
    const deletes = (await eventsOf(client, ns.name, name)).filter((e) => e.reason === "SuccessfulDelete");
    assert.ok(deletes.some((e) => e.message.includes(names[0]!)) && deletes.some((e) => e.message.includes(names[1]!)));
  });

  test("suspend stops new runs; resuming starts the latest due one", async () => {
    const { name, created } = await create("suspended", { schedule: "* * * * *", suspend: true });
    const t = boundary(created, 1);
    clock.set(plus(t, 3 * MINUTE + 5_000));
    const s = await reconcileUntil("a reconcile of the suspended schedule", name, async () => {
      const s = await readSchedule(client, ns.name, name);
      return getCondition(s.status?.conditions, "ScheduleValid") ? s : undefined;
    });
    assert.equal(s.status?.lastScheduleTime, undefined);
    assert.equal((await jobs(name)).length, 0, "no run while suspended");

    await client.patch(CRAWLSCHEDULES, ns.name, name, { spec: { suspend: false } });
    const [job] = await untilJobs("a run after resuming", name, 1);
    assert.equal(job!.metadata.name, `${name}-${minuteOf(t) + 3}`, "one run: the most recent scheduled time");
  });

  test("an operator down for 3 minutes then restarted follows startingDeadlineSeconds", async () => {
    const strict = await create("deadline", { schedule: "*/5 * * * *", startingDeadlineSeconds: 60 });
    const lenient = await create("no-deadline", { schedule: "*/5 * * * *" });
    const t1 = boundary(new Date(Math.max(strict.created.getTime(), lenient.created.getTime())), 5);
    clock.set(plus(t1, 5_000));
    for (const { name } of [strict, lenient]) {
      const [job] = await untilJobs(`${name}: first run`, name, 1);
      await finish(client, job!, "Succeeded", plus(t1, 60_000));
    }

    // Down from t1+4:30 to t1+7:30: the t1+5:00 run is 150 s late when the operator is back.
    await fake.stop();
    clock.set(plus(t1, 7 * MINUTE + 30_000));
    fake = await startScheduleOperator(client, ns.name, workDir, { now: clock.now, workers: false });

    await reconcileUntil("MissSchedule", strict.name, async () =>
      (await reasons(strict.name)).includes("MissSchedule"),
    );
    assert.equal((await jobs(strict.name)).length, 1, "past startingDeadlineSeconds: no late run");
    const late = await reconcileUntil("the late run", lenient.name, async () => {
      const list = await jobs(lenient.name);
      return list.length === 2 ? list[1] : undefined;
    });
    assert.equal(late.metadata.name, `${lenient.name}-${minuteOf(t1) + 5}`, "no deadline: the missed run starts late");
  });

  test("many missed runs start one run, with a TooManyMissedTimes warning", async () => {
    const { name, created } = await create("outage", { schedule: "* * * * *" });
    const t = boundary(created, 1);
    clock.set(plus(t, 5_000));
    await reconcileUntil("the first run", name, async () => (await jobs(name)).length === 1);
    clock.set(plus(t, 4 * 60 * MINUTE + 5_000)); // 240 missed minutes
    const list = await untilJobs("one more run", name, 2);
    await fake.controller.processKey(`${ns.name}/${name}`);
    assert.equal((await jobs(name)).length, 2, "one run for 240 missed times");
    assert.equal(list[1]!.metadata.name, `${name}-${minuteOf(t) + 240}`);
    assert.ok((await reasons(name)).includes("TooManyMissedTimes"));
  });

  test("concurrencyPolicy Replace stops the active run, marks it replaced and starts the new one", async () => {
    const { name, created } = await create("replace", { schedule: "*/5 * * * *", concurrencyPolicy: "Replace" });
    const t1 = boundary(created, 5);
    clock.set(plus(t1, 5_000));
    const [first] = await untilJobs("the first run", name, 1);
    clock.set(plus(t1, 5 * MINUTE + 5_000));
    const second = `${name}-${minuteOf(t1) + 5}`;
    const s = await reconcileUntil("the replacing run", name, async () => {
      const s = await readSchedule(client, ns.name, name);
      return s.status?.active?.[0]?.name === second ? s : undefined;
    });
    assert.equal(s.status!.activeCount, 1);
    const replaced = await client.get<typeof first & object>(CRAWLJOBS, ns.name, first!.metadata.name!);
    assert.equal(replaced!.spec.stop, true, "stopped for good, not suspended");
    assert.notEqual(replaced!.spec.suspend, true);
    assert.equal(replaced!.metadata.annotations?.[REPLACED_BY_ANNOTATION], second);
    assert.ok((await reasons(name)).includes("SuccessfulReplace"));
  });

  test("feedcrawl.io/run-now starts one run now, also while suspended", async () => {
    const { name } = await create("manual", { schedule: "@yearly", suspend: true });
    await client.patch(CRAWLSCHEDULES, ns.name, name, { metadata: { annotations: { [RUN_NOW_ANNOTATION]: "first" } } });
    const [job] = await untilJobs("the run-now run", name, 1);
    assert.match(job!.metadata.name!, new RegExp(`^${name}-now-[0-9a-f]{8}$`));
    const s = await reconcileUntil("lastRunNow", name, async () => {
      const s = await readSchedule(client, ns.name, name);
      return s.status?.lastRunNow === "first" ? s : undefined;
    });
    assert.equal(s.status!.activeCount, 1);
    await fake.controller.processKey(`${ns.name}/${name}`);
    assert.equal((await jobs(name)).length, 1, "one run per run-now value");

    // @yearly is months away: the reconcile still comes back within the hour (a longer timer would fire at once).
    await client.patch(CRAWLSCHEDULES, ns.name, name, { spec: { suspend: false } });
    const reconcile = createCrawlScheduleReconciler({
      client,
      schedules: fake.informer,
      crawlJobs: fake.crawlJobs,
      events: new EventRecorder(client, { component: "test", host: "test", logger: silent }),
      now: clock.now,
    });
    const result = await eventually("a requeue", async () => {
      const r = await reconcile({
        namespace: ns.name,
        name,
        key: `${ns.name}/${name}`,
        logger: silent,
      } as ReconcileRequest);
      return r?.requeueAfterMs !== undefined ? r : undefined;
    });
    assert.ok(result.requeueAfterMs! > 0 && result.requeueAfterMs! <= MAX_REQUEUE_MS, String(result.requeueAfterMs));
  });

  test("an invalid schedule is a False ScheduleValid condition and a Warning Event, and starts nothing", async () => {
    const { name } = await create("never", { schedule: "0 0 31 2 *" });
    const s = await reconcileUntil("ScheduleValid=False", name, async () => {
      const s = await readSchedule(client, ns.name, name);
      return getCondition(s.status?.conditions, "ScheduleValid")?.status === "False" ? s : undefined;
    });
    assert.match(getCondition(s.status?.conditions, "ScheduleValid")!.message, /never fires/);
    assert.ok((await reasons(name)).includes("InvalidSchedule"));
    assert.equal((await jobs(name)).length, 0);
  });
});
