// The per-item backend a Scrapy pipeline that POSTs every item talks to: one
// HTTP request per item, one INSERT (its own transaction) per request. The
// item's URL is the idempotency key, like the feed path's (feed_uri, line_no).
//
//   DATABASE_URL=postgres://… node bench/backend/per-item-server.ts   (forked by bench/run.ts)
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { serveBenchIpc } from "./child.ts";

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error("DATABASE_URL is not set");
// The same pool size as the reference backend's PostgresStore.
const pool = new pg.Pool({ connectionString: databaseUrl, max: 8 });
await pool.query(`CREATE TABLE IF NOT EXISTS items (
  item_key text PRIMARY KEY,
  item     jsonb NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
)`);

const server = createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/items") {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    let item: { fields?: { url?: unknown } };
    try {
      item = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      res.writeHead(400).end();
      return;
    }
    const key = String(item.fields?.url ?? "");
    pool.query("INSERT INTO items (item_key, item) VALUES ($1, $2)", [key, item]).then(
      () => res.writeHead(201).end(),
      (err: { code?: string }) => res.writeHead(err.code === "23505" ? 409 : 503).end(),
    );
  });
});
server.keepAliveTimeout = 65_000;
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const { port } = server.address() as AddressInfo;
serveBenchIpc(server, `http://127.0.0.1:${port}/items`, async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await pool.end();
});
