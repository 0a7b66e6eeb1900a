// The scheduler on its own: per-host and global concurrency, the priority lane,
// delayed retries, stop() and done detection, with a process() the test controls.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Frontier } from "../../runner/frontier.ts";
import { type CrawlRequest, newRequest } from "../../runner/request.ts";
import { Scheduler, type SchedulerOptions } from "../../runner/scheduler.ts";

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

function scheduler(o: Partial<SchedulerOptions> & Pick<SchedulerOptions, "process">) {
  const frontier = new Frontier();
  const s = new Scheduler({
    frontier,
    concurrency: 16,
    perDomain: 8,
    delayMs: 0,
    randomizeDelay: false,
    throttle: { enabled: false, targetConcurrency: 1, startDelayMs: 0, maxDelayMs: 0 },
    onProcessError: (err) => assert.fail(err as Error),
    pageLimit: 0,
    pagesDone: () => 0,
    onPageLimit: () => {},
    ...o,
  });
  return s;
}

test("never more than concurrency in flight, nor perDomain per host; everything is sent once", async () => {
  const active = new Map<string, number>();
  const maxByHost = new Map<string, number>();
  let total = 0;
  let maxTotal = 0;
  const sent: string[] = [];
  const s = scheduler({
    concurrency: 3,
    perDomain: 2,
    process: async (req) => {
      const host = new URL(req.url).host;
      active.set(host, (active.get(host) ?? 0) + 1);
      maxByHost.set(host, Math.max(maxByHost.get(host) ?? 0, active.get(host) as number));
      maxTotal = Math.max(maxTotal, ++total);
      sent.push(req.url);
      await wait(5);
      active.set(host, (active.get(host) ?? 0) - 1);
      total--;
    },
  });
  for (let i = 0; i < 10; i++) for (const h of ["a", "b"]) s.push(newRequest(`http://${h}.example/${i}`, 0));
  await s.run();
  assert.equal(sent.length, 20);
  assert.equal(new Set(sent).size, 20);
  assert.equal(maxTotal, 3);
  assert.ok((maxByHost.get("a.example") ?? 0) <= 2 && (maxByHost.get("b.example") ?? 0) <= 2);
  assert.equal(s.queued, 0);
  assert.equal(s.inFlight, 0);
});

test("the priority lane goes before the frontier; a delayed retry waits its delay", async () => {
  const sent: Array<{ url: string; at: number }> = [];
  const started = performance.now();
  let s: Scheduler | undefined;
  s = scheduler({
    concurrency: 1,
    process: async (req: CrawlRequest) => {
      sent.push({ url: req.url, at: performance.now() - started });
      if (req.url.endsWith("/first")) {
        s?.pushPriority(newRequest("http://a.example/redirected", 0));
        s?.pushLater(newRequest("http://a.example/retry", 0, { retries: 1 }), 150);
      }
    },
  });
  s.push(newRequest("http://a.example/first", 0));
  s.push(newRequest("http://a.example/second", 0));
  await s.run();
  assert.deepEqual(
    sent.map((x) => x.url.slice("http://a.example".length)),
    ["/first", "/redirected", "/second", "/retry"],
  );
  assert.ok((sent[3]?.at ?? 0) >= 140, `the retry went after ${sent[3]?.at} ms`);
});

test("stop() drops waiting requests and retries, lets in-flight ones finish, then resolves", async () => {
  const finished: string[] = [];
  let s: Scheduler | undefined;
  s = scheduler({
    concurrency: 2,
    perDomain: 2,
    process: async (req) => {
      if (req.url.endsWith("/0")) s?.pushLater(newRequest("http://a.example/retry", 0), 50);
      if (req.url.endsWith("/1")) s?.stop();
      await wait(30);
      finished.push(req.url);
    },
  });
  for (let i = 0; i < 10; i++) s.push(newRequest(`http://a.example/${i}`, 0));
  await s.run();
  assert.deepEqual(finished.sort(), ["http://a.example/0", "http://a.example/1"]);
  assert.ok(s.stopped);
  assert.equal(s.inFlight, 0);
  await wait(80);
  assert.equal(finished.length, 2, "the retry never ran");
});

test("pageLimit: never more requests than the limit; onPageLimit once they are done", async () => {
  let pages = 0;
  let limitCalls = 0;
  let s: Scheduler | undefined;
  s = scheduler({
    pageLimit: 3,
    pagesDone: () => pages,
    onPageLimit: () => {
      limitCalls++;
      s?.stop();
    },
    process: async () => {
      await wait(5);
      pages++;
    },
  });
  for (let i = 0; i < 10; i++) s.push(newRequest(`http://a.example/${i}`, 0));
  await s.run();
  assert.equal(pages, 3);
  assert.equal(limitCalls, 1);
});
