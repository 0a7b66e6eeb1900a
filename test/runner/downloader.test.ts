// The downloader against real loopback servers: decoded-size limit (bombs stop
// at the limit), every content-encoding, the deadline, and robots.txt rules;
// hostile responses (unknown or too many encodings, a bomb under the old 1 GiB
// default, concurrent big bodies) fail with a DownloadError and nothing escapes.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import zlib from "node:zlib";
import { createGuardedAgent } from "../../net/address-guard.ts";
import {
  ByteBudget,
  DEFAULT_MAX_RESPONSE_BYTES,
  DownloadError,
  FREE_BYTES_PER_RESPONSE,
  fetchOnce,
  inFlightBudget,
} from "../../runner/downloader.ts";
import { RobotsCache } from "../../runner/robots.ts";
import { type CatalogueServer, createCatalogue, TRAPS } from "../fixtures/catalogue.ts";
import { gzipBomb } from "./hostile-site.ts";

const agent = createGuardedAgent(["127.0.0.0/8"]);
let site: CatalogueServer;
let other: http.Server;
let otherUrl = "";
const body = Buffer.from("<html><body>".padEnd(200_000, "x"));
let robotsStatus = 200;

before(async () => {
  site = await createCatalogue({ products: 5 }).listen({ slowMs: 3000, bombBytes: 32 * 1024 * 1024, altHost: null });
  other = http.createServer((req, res) => {
    const enc = decodeURIComponent(req.url?.slice(1) ?? "");
    if (req.url === "/robots.txt") {
      res.writeHead(robotsStatus, { "content-type": "text/plain" });
      return res.end("User-agent: feedcrawl\nDisallow: /no/\n\nUser-agent: *\nDisallow: /\n");
    }
    if (req.url === "/big") {
      res.writeHead(200, { "content-type": "text/html", "content-length": String(body.length) });
      return res.end(body);
    }
    const encoded =
      enc === "gzip"
        ? zlib.gzipSync(body)
        : enc === "br"
          ? zlib.brotliCompressSync(body)
          : enc === "deflate"
            ? zlib.deflateSync(body)
            : enc === "zstd"
              ? zlib.zstdCompressSync(body)
              : enc === "gzip, br"
                ? zlib.brotliCompressSync(zlib.gzipSync(body))
                : body;
    res.writeHead(200, {
      "content-type": "text/html",
      ...(enc && enc !== "identity" ? { "content-encoding": enc } : {}),
    });
    res.end(encoded);
  });
  await new Promise<void>((r) => other.listen(0, "127.0.0.1", r));
  otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
});
after(async () => {
  await agent.close();
  await site.close();
  await new Promise<void>((r) => other.close(() => r()));
});

const opts = (extra: Partial<Parameters<typeof fetchOnce>[1]> = {}) => ({
  dispatcher: agent,
  timeoutMs: 10_000,
  maxBytes: 1 << 20,
  ...extra,
});

describe("fetchOnce", () => {
  test("stops a gzip bomb at maxResponseBytes (decoded), well before its 32 MiB", async () => {
    const limit = 1 << 20;
    await assert.rejects(fetchOnce(`${site.url}${TRAPS.bomb}`, opts({ maxBytes: limit })), (err: unknown) => {
      assert.ok(err instanceof DownloadError);
      assert.equal(err.kind, "responseTooLarge");
      assert.equal(err.retryable, false);
      assert.ok(
        (err.decodedBytes ?? 0) > limit && (err.decodedBytes ?? 0) <= limit + 256 * 1024,
        `read ${err.decodedBytes}`,
      );
      assert.match(err.message, /bomb\.html/);
      return true;
    });
  });

  for (const enc of ["identity", "gzip", "br", "deflate", "zstd", "gzip, br"]) {
    test(`decodes content-encoding ${enc}`, async () => {
      const r = await fetchOnce(`${otherUrl}/${encodeURIComponent(enc)}`, opts());
      assert.equal(r.status, 200);
      assert.ok(r.body?.equals(body));
      if (enc !== "identity") assert.ok(r.wireBytes < body.length);
    });
  }

  test("a corrupt encoded body is a decoding error, not retried", async () => {
    await assert.rejects(fetchOnce(`${otherUrl}/${encodeURIComponent("x-gzip")}`, opts()), (err: unknown) => {
      assert.ok(err instanceof DownloadError);
      assert.equal(err.kind, "decoding");
      assert.equal(err.retryable, false);
      return true;
    });
  });

  test("refuses a declared Content-Length over the limit without reading it", async () => {
    await assert.rejects(
      fetchOnce(`${otherUrl}/big`, opts({ maxBytes: 100_000 })),
      /larger than maxResponseBytes 100000/,
    );
  });

  test("truncates instead when asked (robots.txt)", async () => {
    const r = await fetchOnce(`${otherUrl}/gzip`, opts({ maxBytes: 1000, truncate: true }));
    assert.equal(r.truncated, true);
    assert.equal(r.body?.length, 1000);
  });

  test("times out a slow page with a retryable error naming the URL", async () => {
    await assert.rejects(fetchOnce(`${site.url}${TRAPS.slow}`, opts({ timeoutMs: 300 })), (err: unknown) => {
      assert.ok(err instanceof DownloadError);
      assert.equal(err.kind, "timeout");
      assert.equal(err.retryable, true);
      assert.match(err.message, /slow\.html/);
      return true;
    });
  });

  test("returns redirects unfollowed, with the resolved Location", async () => {
    const r = await fetchOnce(`${site.url}/trap/redirect/1`, opts());
    assert.equal(r.status, 302);
    assert.match(r.location ?? "", /^http:\/\/127\.0\.0\.1:\d+\/catalogue\/.+_1\/index\.html$/);
  });

  test("skips bodies the caller does not want", async () => {
    const r = await fetchOnce(`${site.url}${TRAPS.json}`, opts({ wantBody: (ct) => ct.includes("html") }));
    assert.equal(r.status, 200);
    assert.equal(r.body, undefined);
    assert.equal(r.contentType, "application/json");
  });
});

describe("RobotsCache", () => {
  const cache = (fetches: number[]) =>
    new RobotsCache({
      dispatcher: agent,
      headers: {},
      userAgentToken: "feedcrawl",
      timeoutMs: 5000,
      onFetch: (s) => fetches.push(s ?? -1),
    });

  test("applies the group for our user agent and caches per origin", async () => {
    robotsStatus = 200;
    const fetches: number[] = [];
    const c = cache(fetches);
    assert.equal(await c.isAllowed(`${otherUrl}/yes/page`), true);
    assert.equal(await c.isAllowed(`${otherUrl}/no/page`), false);
    assert.deepEqual(fetches, [200]);
  });

  test("4xx allows everything; 5xx disallows everything (RFC 9309)", async () => {
    robotsStatus = 404;
    assert.equal(await cache([]).isAllowed(`${otherUrl}/no/page`), true);
    robotsStatus = 503;
    assert.equal(await cache([]).isAllowed(`${otherUrl}/yes/page`), false);
    robotsStatus = 200;
  });

  test("an unreachable robots.txt disallows everything", async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    assert.equal(await cache([]).isAllowed(`http://127.0.0.1:${port}/x`), false);
  });
});

describe("hostile responses", () => {
  let hostile: http.Server;
  let url = "";
  const escaped: unknown[] = [];
  const record = (e: unknown) => escaped.push(e);
  const bomb = gzipBomb(160);
  const big = Buffer.alloc(4 << 20, 0x61);

  before(async () => {
    process.on("uncaughtException", record);
    process.on("unhandledRejection", record);
    hostile = http.createServer(async (req, res) => {
      const path = req.url ?? "/";
      if (path === "/ok") return res.end("<html><body>fine</body></html>");
      if (path === "/bomb") {
        res.writeHead(200, { "content-type": "text/html", "content-encoding": "gzip" });
        return res.end(bomb);
      }
      if (path === "/big") {
        // 4 MiB in 256 KiB steps, so two of these are in flight at the same time.
        res.writeHead(200, { "content-type": "text/html" });
        for (let i = 0; i < big.length && !res.destroyed; i += 256 * 1024) {
          res.write(big.subarray(i, i + 256 * 1024));
          await new Promise((r) => setTimeout(r, 10));
        }
        return res.end();
      }
      const encoding = decodeURIComponent(path.slice("/enc/".length));
      res.writeHead(200, { "content-type": "text/html", "content-encoding": encoding });
      res.end("<html><body>unreadable</body></html>");
    });
    await new Promise<void>((r) => hostile.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(hostile.address() as AddressInfo).port}`;
  });
  after(async () => {
    process.off("uncaughtException", record);
    process.off("unhandledRejection", record);
    hostile.closeAllConnections();
    await new Promise<void>((r) => hostile.close(() => r()));
  });

  /** Lets a late 'error' event (undici emits it a tick after destroy) surface. */
  const settle = () => new Promise((r) => setTimeout(r, 50));

  for (const [encoding, message] of [
    ["evil", /Unsupported content-encoding 'evil' \(http:\/\/127\.0\.0\.1:\d+\/enc\/evil\)/],
    ["gzip, evil", /Unsupported content-encoding 'evil'/],
    ["gzip, gzip, gzip, gzip, gzip, gzip", /Too many content-encodings \(6, at most 5\)/],
  ] as const) {
    test(`Content-Encoding '${encoding}' fails that request only, naming the URL and the encoding`, async () => {
      const target = `${url}/enc/${encodeURIComponent(encoding)}`;
      await assert.rejects(fetchOnce(target, opts()), (err: unknown) => {
        assert.ok(err instanceof DownloadError);
        assert.equal(err.kind, "decoding");
        assert.equal(err.retryable, false);
        assert.equal(err.url, target);
        assert.match(err.message, message);
        return true;
      });
      await settle();
      assert.deepEqual(escaped, [], "nothing may escape as an uncaught exception or unhandled rejection");
      // The same agent still works: the bad response broke nothing shared.
      assert.equal((await fetchOnce(`${url}/ok`, opts())).body?.toString(), "<html><body>fine</body></html>");
    });
  }

  test("a body refused by its declared Content-Length leaves nothing uncaught", async () => {
    await assert.rejects(fetchOnce(`${otherUrl}/big`, opts({ maxBytes: 100_000 })), /larger than maxResponseBytes/);
    await settle();
    assert.deepEqual(escaped, []);
  });

  test("a 160 MiB gzip bomb is cut at the 32 MiB default, with memory bounded", async (t) => {
    assert.equal(DEFAULT_MAX_RESPONSE_BYTES, 32 * 1024 * 1024);
    const base = process.memoryUsage();
    const peak = { rss: base.rss, arrayBuffers: base.arrayBuffers };
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peak.rss = Math.max(peak.rss, m.rss);
      peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers);
    }, 5);
    try {
      // No maxBytes: the default applies (before issue 14 there was none, and this read 160 MiB).
      await assert.rejects(fetchOnce(`${url}/bomb`, { dispatcher: agent, timeoutMs: 30_000 }), (err: unknown) => {
        assert.ok(err instanceof DownloadError);
        assert.equal(err.kind, "responseTooLarge");
        assert.match(
          err.message,
          /Decoded body passed maxResponseBytes 33554432 \(\d+ bytes on the wire\) \(http:.*\/bomb\)/,
        );
        assert.ok((err.decodedBytes ?? 0) <= DEFAULT_MAX_RESPONSE_BYTES + 64 * 1024, `decoded ${err.decodedBytes}`);
        return true;
      });
    } finally {
      clearInterval(sampler);
    }
    const MiB = 1024 * 1024;
    const grewBuffers = (peak.arrayBuffers - base.arrayBuffers) / MiB;
    const grewRss = (peak.rss - base.rss) / MiB;
    assert.ok(grewBuffers < 48, `buffers grew ${grewBuffers.toFixed(1)} MiB for a 160 MiB bomb`);
    assert.ok(grewRss < 96, `RSS grew ${grewRss.toFixed(1)} MiB for a 160 MiB bomb`);
    t.diagnostic(`160 MiB bomb: peak growth ${grewBuffers.toFixed(1)} MiB buffers, ${grewRss.toFixed(1)} MiB RSS`);
    assert.equal(inFlightBudget.used, 0, "the bomb's bytes are given back to the budget");
    await settle();
    assert.deepEqual(escaped, []);
  });

  test("the in-flight budget fails the response that would pass it, retryably, and recovers", async () => {
    // Budget 2 MiB, limit 4 MiB: one 4 MiB response alone may hold 3 MiB (its first
    // MiB is free), two at once would hold 6 MiB > max(2, 4) MiB.
    const budget = new ByteBudget(2 << 20);
    const fetchBig = () => fetchOnce(`${url}/big`, opts({ maxBytes: 4 << 20, budget }));
    const results = await Promise.allSettled([fetchBig(), fetchBig()]);
    const ok = results.filter((r) => r.status === "fulfilled");
    const failed = results.filter((r) => r.status === "rejected");
    assert.equal(ok.length, 1, "one response completes");
    assert.ok(ok[0]?.value.body?.equals(big));
    assert.equal(failed.length, 1, "the other is refused");
    const err = failed[0]?.reason as DownloadError;
    assert.ok(err instanceof DownloadError);
    assert.equal(err.kind, "memoryBudget");
    assert.equal(err.retryable, true);
    assert.match(err.message, /past the in-flight budget of 4194304 bytes \(http:.*\/big\)/);
    assert.equal(budget.used, 0, "both responses gave their bytes back");
    // Alone, it gets through: the refusal was about the others in flight.
    assert.ok((await fetchBig()).body?.equals(big));
    assert.equal(budget.used, 0);
    assert.ok(FREE_BYTES_PER_RESPONSE <= 1 << 20);
    await settle();
    assert.deepEqual(escaped, []);
  });
});
