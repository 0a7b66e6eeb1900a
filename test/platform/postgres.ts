// PostgreSQL is not started by the platform: it already runs on the machine
// (127.0.0.1:5432, user postgres, trust auth; .ci/run starts it if needed).
// Each test gets its own database, dropped at cleanup.
import { randomBytes } from "node:crypto";
import pg from "pg";

/** Connection settings of the machine's server; FEEDCRAWL_TEST_PG_* override them. */
export function pgServer(): { host: string; port: number; user: string } {
  return {
    host: process.env.FEEDCRAWL_TEST_PG_HOST ?? "127.0.0.1",
    port: Number(process.env.FEEDCRAWL_TEST_PG_PORT ?? 5432),
    user: process.env.FEEDCRAWL_TEST_PG_USER ?? "postgres",
  };
}

async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const server = pgServer();
  const client = new pg.Client({ ...server, database: "postgres", connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${server.host}:${server.port} as ${server.user} (${(err as Error).message}). ` +
        "Start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`.",
    );
  }
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Fails with a hint when the machine's PostgreSQL is not running. */
export async function checkPostgres(): Promise<void> {
  await withAdmin((client) => client.query("select 1"));
}

export interface TestDatabase {
  name: string;
  /** postgres://postgres@127.0.0.1:5432/<name> */
  connectionString: string;
  /** Drops the database (closing any connection left open). */
  cleanup(): Promise<void>;
}

/** A fresh, empty database named after `prefix` plus a random suffix. */
export async function pgDatabase(prefix: string): Promise<TestDatabase> {
  const base = prefix
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, "_")
    .slice(0, 40);
  const name = `${base}_${randomBytes(5).toString("hex")}`;
  await withAdmin((client) => client.query(`CREATE DATABASE "${name}"`));
  const server = pgServer();
  return {
    name,
    connectionString: `postgres://${server.user}@${server.host}:${server.port}/${name}`,
    cleanup: () =>
      withAdmin(async (client) => void (await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))),
  };
}
