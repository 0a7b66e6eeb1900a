// The local delta store (`feedcrawl crawl --delta-dir DIR`): DIR/<key>.sqlite
// through node:sqlite, like the crawl state (runner/state/sqlite.ts). One
// transaction per save, so a killed process leaves the previous run's state.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { type DeltaSnapshot, type DeltaStore, emptySnapshot } from "./store.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS validators (url TEXT PRIMARY KEY, etag TEXT, last_modified TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (hash TEXT PRIMARY KEY) WITHOUT ROWID;
`;

export class SqliteDeltaStore implements DeltaStore {
  readonly where: string;
  readonly #db: DatabaseSync;

  /** `key`: the spider's name or settings.delta.key (one file per key). */
  constructor(dir: string, key: string) {
    mkdirSync(dir, { recursive: true });
    this.where = path.join(dir, `${key.replace(/[^A-Za-z0-9._-]/g, "_")}.sqlite`);
    this.#db = new DatabaseSync(this.where);
    this.#db.exec("PRAGMA journal_mode = WAL");
    this.#db.exec(SCHEMA);
  }

  async load(): Promise<DeltaSnapshot> {
    const out = emptySnapshot();
    for (const r of this.#db.prepare("SELECT url, etag, last_modified FROM validators").iterate()) {
      const row = r as { url: string; etag: string | null; last_modified: string | null };
      out.validators.set(row.url, {
        ...(row.etag ? { etag: row.etag } : {}),
        ...(row.last_modified ? { lastModified: row.last_modified } : {}),
      });
    }
    for (const r of this.#db.prepare("SELECT hash FROM items").iterate()) out.items.add((r as { hash: string }).hash);
    return out;
  }

  async save(changes: DeltaSnapshot): Promise<void> {
    const db = this.#db;
    const putValidators = db.prepare(
      "INSERT INTO validators (url, etag, last_modified) VALUES (?, ?, ?) ON CONFLICT(url) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified",
    );
    const putItem = db.prepare("INSERT OR IGNORE INTO items (hash) VALUES (?)");
    db.exec("BEGIN IMMEDIATE");
    try {
      for (const [url, v] of changes.validators) putValidators.run(url, v.etag ?? null, v.lastModified ?? null);
      for (const hash of changes.items) putItem.run(hash);
      db.exec("COMMIT");
    } catch (err) {
      if (db.isTransaction) db.exec("ROLLBACK");
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
  }
}
