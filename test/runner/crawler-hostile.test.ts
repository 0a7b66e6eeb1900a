// Issue 14, finding 2: one deeply nested page (<div> × 200 000, 2.2 MB) must not
// freeze the runner. A real server on loopback serves it next to ordinary
// pages: the crawl finishes promptly, the page is counted as a `parse` error,
// every other page's item is collected, the event loop keeps turning, and
// stop() while that page is in flight takes effect within seconds.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import { Crawler } from "../../runner/crawler.ts";
import { PARSE_LIMITS } from "../../runner/html.ts";
import { captureLogger, MemorySink, startSite, type TestSite } from "./helpers.ts";

const DEPTH = 200_000;
const AFTER = 20;
const deepPage = `<!DOCTYPE html><html><body><h1>deep</h1>${"<div>".repeat(DEPTH)}<a href="/from-deep">x</a>${"</div>".repeat(DEPTH)}</body></html>`;

let onDeepSent: (() => void) | undefined;
let site: TestSite;

before(async () => {
  site = await startSite((_host, path, res) => {
    if (path === "/") {
      const links = Array.from({ length: AFTER }, (_, i) => `<a href="/after-${i + 1}">${i + 1}</a>`).join("");
      return `<!DOCTYPE html><html><body><h1>index</h1><a href="/deep">deep</a>${links}</body></html>`;
    }
    if (path === "/deep") {
      res.on("finish", () => onDeepSent?.());
      return deepPage;
    }
    const m = /^\/after-(\d+)$/.exec(path);
    return m ? `<!DOCTYPE html><html><body><h1>after ${m[1]}</h1></body></html>` : undefined;
  });
});
after(async () => {
  await site?.close();
});

function spider(concurrentRequests: number): SpiderSpec {
  return {
    name: "hostile",
    startUrls: [`${site.url}/`],
    follow: [{}],
    extract: [{ name: "page", fields: { title: { selector: "h1", text: true, required: true } } }],
    settings: { allowPrivateNetworks: ["127.0.0.0/8"], robotsTxtObey: false, concurrentRequests },
  };
}

/** The longest gap between ticks of a 10 ms interval: how long the event loop was held. */
function lagMeter() {
  let last = performance.now();
  let max = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - last);
    last = now;
  }, 10);
  return {
    stop: () => {
      clearInterval(timer);
      return max;
    },
  };
}

describe("a page nested 200 000 deep", () => {
  test("is counted as a parse error while the crawl collects every other page, promptly", async () => {
    const sink = new MemorySink();
    const { logger, lines } = captureLogger("warn");
    const lag = lagMeter();
    const started = performance.now();
    const r = await new Crawler({ spider: spider(4), sink, logger }).run();
    const elapsed = performance.now() - started;
    const maxLag = lag.stop();

    assert.equal(r.reason, "finished");
    assert.ok(elapsed < 20_000, `the crawl took ${Math.round(elapsed)} ms`);
    assert.ok(maxLag < 3000, `the event loop was held ${Math.round(maxLag)} ms`);
    assert.deepEqual(r.stats.errorsByKind, { parse: 1 });
    assert.equal(r.stats.status.pages, AFTER + 2);
    const titles = sink.items.map((i) => i.fields.title).sort();
    const expected = ["index", ...Array.from({ length: AFTER }, (_, i) => `after ${i + 1}`)].sort();
    assert.deepEqual(titles, expected, "every other page's item, nothing from the deep page");
    assert.equal(site.hits("127.0.0.1", "/deep"), 1);
    assert.equal(site.hits("127.0.0.1", "/from-deep"), 0, "links of an unparsed page are not followed");
    const warning = lines.find((l) => String(l.url).endsWith("/deep"));
    assert.equal(warning?.kind, "parse");
    assert.match(String(warning?.msg), new RegExp(`/deep: elements nested more than ${PARSE_LIMITS.maxDepth} deep`));
  });

  test("stop() while it is in flight takes effect within seconds", async () => {
    const sink = new MemorySink();
    const crawler = new Crawler({ spider: spider(1), sink, logger: captureLogger("warn").logger });
    let stoppedAt = 0;
    onDeepSent = () => {
      stoppedAt = performance.now();
      crawler.stop();
    };
    try {
      const r = await crawler.run();
      const afterStop = performance.now() - stoppedAt;
      assert.ok(stoppedAt > 0, "stop() was called while the deep page was in flight");
      assert.equal(r.reason, "shutdown");
      assert.ok(afterStop < 5000, `run() resolved ${Math.round(afterStop)} ms after stop()`);
      assert.deepEqual(sink.closed, ["shutdown"]);
      // One request at a time: nothing after the deep page was sent.
      assert.deepEqual(
        sink.items.map((i) => i.fields.title),
        ["index"],
      );
      assert.equal(site.hits("127.0.0.1", "/after-1"), 1, "only the first test fetched it");
    } finally {
      onDeepSent = undefined;
    }
  });
});
