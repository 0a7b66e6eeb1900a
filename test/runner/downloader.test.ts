// The downloader against real loopback servers: decoded-size limit (bombs stop
// at the limit), every content-encoding, the deadline, and robots.txt rules.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import zlib from "node:zlib";
import { createGuardedAgent } from "../../net/address-guard.ts";
import { DownloadError, fetchOnce } from "../../runner/downloader.ts";
import { RobotsCache } from "../../runner/robots.ts";
import { type CatalogueServer, createCatalogue, TRAPS } from "../fixtures/catalogue.ts";

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
