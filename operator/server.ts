// The probe and metrics HTTP endpoints: /healthz (the process is alive),
// /readyz (caches synced), /metrics (Prometheus text format: the registry's
// metrics, then the per-CrawlJob series).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { writeCrawlJobMetrics } from "./crawljob-metrics.ts";
import { registry } from "./metrics.ts";

/** ":8080" → all interfaces, "127.0.0.1:0" → loopback, any free port. */
function parseAddr(addr: string): { host: string | undefined; port: number } {
  const i = addr.lastIndexOf(":");
  if (i < 0) throw new Error(`Invalid address '${addr}': expected [host]:port`);
  const host = addr.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`Invalid port in address '${addr}'`);
  return { host: host || undefined, port };
}

interface Endpoints {
  healthz?: () => boolean;
  readyz?: () => boolean;
  metrics?: boolean;
}

export async function listen(addr: string, endpoints: Endpoints): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const probe = path === "/healthz" ? endpoints.healthz : path === "/readyz" ? endpoints.readyz : undefined;
    if (probe) {
      const ok = probe();
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok\n" : "not ready\n");
      return;
    }
    if (path === "/metrics" && endpoints.metrics) {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": registry.contentType }).write(text);
          try {
            writeCrawlJobMetrics((chunk) => res.write(chunk));
            res.end();
          } catch {
            res.destroy(); // a cut-off scrape fails in Prometheus rather than passing for a whole one
          }
        },
        (err: Error) => res.writeHead(500).end(err.message),
      );
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  });
  const { host, port } = parseAddr(addr);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}
