// Shared bits for the runner tests: an in-memory item sink, a logger whose
// lines the test can read, the books-local spider pointed at a fixture server,
// and a small loopback site whose pages a test writes itself.
import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Writable } from "node:stream";
import { pino } from "pino";
import { parse } from "yaml";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import type { Item, ItemSink } from "../../runner/item.ts";

export class MemorySink implements ItemSink {
  readonly items: Item[] = [];
  closed: string[] = [];
  writeDelayMs = 0;
  async write(item: Item): Promise<void> {
    if (this.closed.length) throw new Error("write after close");
    if (this.writeDelayMs) await new Promise((r) => setTimeout(r, this.writeDelayMs));
    this.items.push(item);
  }
  async close(reason: string): Promise<void> {
    this.closed.push(reason);
  }
}

export function captureLogger(level = "debug") {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split("\n")) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

const example = parse(readFileSync(new URL("../../examples/books-local.yaml", import.meta.url), "utf8")) as {
  spec: { spider: SpiderSpec };
};

/** examples/books-local.yaml's spider, started at `baseUrl`, with the trap links followed too. */
export function booksSpider(
  baseUrl: string,
  opts: { traps?: boolean; settings?: SpiderSpec["settings"] } = {},
): SpiderSpec {
  const spider = structuredClone(example.spec.spider);
  spider.startUrls = [`${baseUrl}/`];
  if (opts.traps) spider.follow = [...(spider.follow ?? []), { selector: "aside.traps a" }];
  spider.settings = { ...spider.settings, ...opts.settings };
  return spider;
}

/** Items as sortable strings (field order independent). */
export function itemKeys(items: readonly Item[]): string[] {
  return items
    .map((i) =>
      JSON.stringify({
        type: i.type,
        fields: Object.fromEntries(Object.entries(i.fields).sort(([a], [b]) => a.localeCompare(b))),
      }),
    )
    .sort();
}

export interface TestSite {
  url: string;
  port: number;
  /** Requests per `host path` (host without the port). */
  hits(host: string, path: string): number;
  close(): Promise<void>;
}

/**
 * A real HTTP server on 127.0.0.1 whose pages come from `page(host, path, res)`;
 * it returns the HTML to serve (200), or undefined for a 404. `res` lets a page
 * watch its own response (e.g. to act when it was sent) or set headers; `req`
 * shows what the crawler sent.
 */
export async function startSite(
  page: (host: string, path: string, res: http.ServerResponse, req: http.IncomingMessage) => string | undefined,
): Promise<TestSite> {
  const hits = new Map<string, number>();
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const host = (req.headers.host ?? "").replace(/:\d+$/, "");
    const path = new URL(req.url ?? "/", "http://x").pathname;
    hits.set(`${host} ${path}`, (hits.get(`${host} ${path}`) ?? 0) + 1);
    const html = page(host, path, res, req);
    if (res.headersSent || res.writableEnded) return;
    res.writeHead(html === undefined ? 404 : res.statusCode, { "content-type": "text/html; charset=utf-8" });
    res.end(html ?? "<h1>Not found</h1>");
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    hits: (host, path) => hits.get(`${host} ${path}`) ?? 0,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
