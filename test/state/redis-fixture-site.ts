// A one-host site for the shared-crawl tests and the Redis frontier bench:
// pages /p/0 … /p/N-1 (each links to two children and back to its parent, so
// every page is reachable from /p/0 and most are found several times), a
// fixed latency per page, an optional robots.txt Crawl-delay, and what the
// server measured: the most requests in flight at once, page arrival times,
// robots.txt fetches and which worker (x-worker header) fetched what.
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export interface FixtureSite {
  url: string;
  /** The URL path of every page: the truth a finished crawl must have visited. */
  pages: string[];
  /** Most page requests in flight at once, as the server saw them. */
  readonly maxInFlight: number;
  /** performance.now() of every page request's arrival, in order. */
  readonly arrivals: number[];
  readonly robotsFetches: number;
  /** Page requests per x-worker header. */
  readonly byWorker: Map<string, number>;
  close(): Promise<void>;
}

export async function startFixtureSite(opts: { pages: number; latencyMs: number; crawlDelaySeconds?: number }) {
  const pages = Array.from({ length: opts.pages }, (_, i) => `/p/${i}`);
  let inFlight = 0;
  let maxInFlight = 0;
  let robotsFetches = 0;
  const arrivals: number[] = [];
  const byWorker = new Map<string, number>();
  const sockets = new Set<Socket>();
  const server = http.createServer(async (req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path === "/robots.txt") {
      robotsFetches++;
      const delay = opts.crawlDelaySeconds ? `Crawl-delay: ${opts.crawlDelaySeconds}\n` : "";
      res.writeHead(200, { "content-type": "text/plain" }).end(`User-agent: *\n${delay}Allow: /\n`);
      return;
    }
    const m = /^\/p\/(\d+)$/.exec(path);
    const i = m ? Number(m[1]) : -1;
    if (i < 0 || i >= opts.pages) {
      res.writeHead(404).end();
      return;
    }
    arrivals.push(performance.now());
    const worker = String(req.headers["x-worker"] ?? "");
    byWorker.set(worker, (byWorker.get(worker) ?? 0) + 1);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await sleep(opts.latencyMs);
    const links = [2 * i + 1, 2 * i + 2, Math.floor((i - 1) / 2)].filter((j) => j >= 0 && j < opts.pages);
    res.writeHead(200, { "content-type": "text/html" });
    res.end(`<h1>page ${i}</h1>${links.map((j) => `<a href="/p/${j}">${j}</a>`).join("")}`, () => inFlight--);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const site: FixtureSite = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    pages,
    get maxInFlight() {
      return maxInFlight;
    },
    arrivals,
    get robotsFetches() {
      return robotsFetches;
    },
    byWorker,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return site;
}
