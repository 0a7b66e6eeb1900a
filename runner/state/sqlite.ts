// The embedded crawl state (`feedcrawl crawl --jobdir DIR`): one SQLite file,
// DIR/state.sqlite, through Node's built-in node:sqlite (no native build).
// WAL journal, synchronous=NORMAL for frontier steps (a process kill loses
// nothing committed; a power loss may lose the last frontier steps, which only
// makes pages be redone), synchronous=FULL for the two batch steps a delivery
// depends on (beginBatch, batchStored). The database is opened in exclusive
// locking mode: a second crawl on the same directory fails at once.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlRequest } from "../request.ts";
import type {
  CrawlState,
  EnqueueEntry,
  LeasedRequest,
  PageKey,
  PendingBatch,
  RecoveredBatch,
  StateOpening,
} from "./types.ts";

// Page states: 0 queued, 1 in flight (leased), 2 processed (items not all committed), 3 done.
const PROCESSED = 2;
const DONE = 3;

// Queue order: requeued pages, then priority entries, then the rest, FIFO within each.
const REQUEUE_BASE = -(2 ** 52);
const PRIORITY_BASE = -(2 ** 51);

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pages (
  key TEXT PRIMARY KEY,
  state INTEGER NOT NULL,
  qorder INTEGER NOT NULL,
  request TEXT,
  produced TEXT,
  committed TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pages_queue ON pages (qorder) WHERE state = 0;
CREATE INDEX IF NOT EXISTS pages_open ON pages (state) WHERE state IN (1, 2);
CREATE TABLE IF NOT EXISTS batches (
  feed TEXT NOT NULL,
  batch_id INTEGER NOT NULL,
  uri TEXT NOT NULL,
  pages TEXT NOT NULL,
  stored TEXT,
  PRIMARY KEY (feed, batch_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feeds (feed TEXT PRIMARY KEY, last_batch_id INTEGER NOT NULL) WITHOUT ROWID;
`;

type Counts = Record<string, number>;

function covers(committed: Counts, produced: Counts): boolean {
  for (const [feed, n] of Object.entries(produced)) if ((committed[feed] ?? 0) < n) return false;
  return true;
}

function parseCounts(text: unknown): Counts {
  return typeof text === "string" && text ? (JSON.parse(text) as Counts) : {};
}

export interface SqliteStateOptions {
  /** The job directory; created when missing. */
  dir: string;
  /**
   * What this directory belongs to (the spider's name): a directory of another
   * crawl is refused rather than mixed with this one.
   */
  identity: string;
}

export class SqliteState implements CrawlState {
  readonly file: string;
  readonly #identity: string;
  #db: DatabaseSync | undefined;
  #seq = 0;
  readonly #stmts = new Map<string, StatementSync>();

  constructor(opts: SqliteStateOptions) {
    mkdirSync(opts.dir, { recursive: true });
    this.file = path.join(opts.dir, "state.sqlite");
    this.#identity = opts.identity;
  }

  get #d(): DatabaseSync {
    if (!this.#db) throw new Error(`Crawl state ${this.file} is not open`);
    return this.#db;
  }

  #q(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) {
      s = this.#d.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  /** Runs `fn` in one IMMEDIATE transaction; `full`: fsync at commit (synchronous=FULL for this one). */
  #tx<T>(fn: () => T, full = false): T {
    const db = this.#d;
    if (full) db.exec("PRAGMA synchronous = FULL");
    db.exec("BEGIN IMMEDIATE");
    try {
      const out = fn();
      db.exec("COMMIT");
      return out;
    } catch (err) {
      if (db.isTransaction) db.exec("ROLLBACK");
      throw err;
    } finally {
      if (full) db.exec("PRAGMA synchronous = NORMAL");
    }
  }

  #meta(k: string): string | undefined {
    return (this.#q("SELECT v FROM meta WHERE k = ?").get(k) as { v: string } | undefined)?.v;
  }

  #setMeta(k: string, v: string): void {
    this.#q("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v").run(k, v);
  }

  async open(): Promise<StateOpening> {
    const db = new DatabaseSync(this.file, { timeout: 0 });
    this.#db = db;
    try {
      db.exec("PRAGMA locking_mode = EXCLUSIVE");
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = NORMAL");
      db.exec("BEGIN IMMEDIATE; COMMIT"); // takes the exclusive lock now: a second crawl fails here
      db.exec(SCHEMA);
    } catch (err) {
      db.close();
      this.#db = undefined;
      const busy = /locked|busy/i.test((err as Error).message);
      throw new Error(
        busy
          ? `Job directory ${path.dirname(this.file)} is in use by another crawl`
          : `Cannot open the crawl state ${this.file}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    try {
      return this.#tx(() => this.#recover(), true);
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  #recover(): StateOpening {
    const owner = this.#meta("identity");
    if (owner !== undefined && owner !== this.#identity)
      throw new Error(
        `Job directory ${path.dirname(this.file)} holds the crawl of ${JSON.stringify(owner)}, not ${JSON.stringify(this.#identity)}`,
      );
    this.#setMeta("identity", this.#identity);
    this.#seq = Number(this.#meta("seq") ?? 0);
    const finishReason = this.#meta("finished");
    const pending = (
      this.#q("SELECT feed, batch_id, uri, pages, stored FROM batches ORDER BY feed, batch_id").all() as {
        feed: string;
        batch_id: number;
        uri: string;
        pages: string;
        stored: string | null;
      }[]
    ).map(
      (r): RecoveredBatch => ({
        feed: r.feed,
        batchId: r.batch_id,
        uri: r.uri,
        pages: JSON.parse(r.pages) as Array<[PageKey, number]>,
        ...(r.stored ? { stored: JSON.parse(r.stored) as FeedClosed } : {}),
      }),
    );
    const open = this.#q("SELECT key FROM pages WHERE state IN (1, 2) ORDER BY qorder").all() as { key: string }[];
    const requeue = this.#q("UPDATE pages SET state = 0, produced = NULL, qorder = ? WHERE key = ?");
    for (const { key } of open) requeue.run(REQUEUE_BASE + this.#seq++, key);
    this.#setMeta("seq", String(this.#seq));
    const done = (this.#q("SELECT count(*) AS n FROM pages WHERE state = 3").get() as { n: number }).n;
    const any = this.#q("SELECT 1 AS x FROM pages LIMIT 1").get() !== undefined;
    return {
      status: finishReason !== undefined ? "finished" : any ? "resumed" : "new",
      ...(finishReason !== undefined ? { finishReason } : {}),
      pending,
      requeued: open.length,
      done,
    };
  }

  async enqueue(entries: readonly EnqueueEntry[]): Promise<boolean[]> {
    if (entries.length === 0) return [];
    return this.#tx(() => {
      const insert = this.#q(
        "INSERT INTO pages (key, state, qorder, request) VALUES (?, 0, ?, ?) ON CONFLICT (key) DO NOTHING",
      );
      const added = entries.map((e) => {
        const order = (e.priority ? PRIORITY_BASE : 0) + this.#seq++;
        return insert.run(e.key, order, JSON.stringify(e.request)).changes > 0;
      });
      this.#setMeta("seq", String(this.#seq));
      return added;
    });
  }

  async dequeue(max: number): Promise<LeasedRequest[]> {
    return this.#tx(() => {
      const rows = this.#q("SELECT key, request, committed FROM pages WHERE state = 0 ORDER BY qorder LIMIT ?").all(
        max,
      ) as { key: string; request: string; committed: string | null }[];
      const take = this.#q("UPDATE pages SET state = 1 WHERE key = ?");
      return rows.map((r) => {
        take.run(r.key);
        return { key: r.key, request: JSON.parse(r.request) as CrawlRequest, committed: parseCounts(r.committed) };
      });
    });
  }

  async pageProcessed(key: PageKey, produced: Record<string, number>): Promise<void> {
    this.#tx(() => {
      const row = this.#q("SELECT state, committed FROM pages WHERE key = ?").get(key) as
        | { state: number; committed: string | null }
        | undefined;
      if (!row || row.state === DONE) return;
      if (covers(parseCounts(row.committed), produced)) this.#markDone(key);
      else
        this.#q("UPDATE pages SET state = ?, produced = ? WHERE key = ?").run(PROCESSED, JSON.stringify(produced), key);
    });
  }

  /** A done page keeps only its key (the seen-set): its request and counts are dropped. */
  #markDone(key: PageKey): void {
    this.#q("UPDATE pages SET state = 3, request = NULL, produced = NULL, committed = NULL WHERE key = ?").run(key);
  }

  async beginBatch(batch: PendingBatch): Promise<void> {
    this.#tx(() => {
      this.#q(
        "INSERT INTO batches (feed, batch_id, uri, pages) VALUES (?, ?, ?, ?) ON CONFLICT (feed, batch_id) DO UPDATE SET uri = excluded.uri, pages = excluded.pages, stored = NULL",
      ).run(batch.feed, batch.batchId, batch.uri, JSON.stringify(batch.pages));
    }, true);
  }

  async batchStored(feed: string, batchId: number, closed: FeedClosed): Promise<void> {
    this.#tx(() => {
      this.#q("UPDATE batches SET stored = ? WHERE feed = ? AND batch_id = ?").run(
        JSON.stringify(closed),
        feed,
        batchId,
      );
    }, true);
  }

  async commitBatch(feed: string, batchId: number): Promise<void> {
    this.#tx(() => {
      const row = this.#q("SELECT pages, stored FROM batches WHERE feed = ? AND batch_id = ?").get(feed, batchId) as
        | { pages: string; stored: string | null }
        | undefined;
      if (!row) return;
      const get = this.#q("SELECT state, produced, committed FROM pages WHERE key = ?");
      const set = this.#q("UPDATE pages SET committed = ? WHERE key = ?");
      for (const [key, n] of JSON.parse(row.pages) as Array<[PageKey, number]>) {
        const page = get.get(key) as { state: number; produced: string | null; committed: string | null } | undefined;
        if (!page || page.state === DONE) continue;
        const committed = parseCounts(page.committed);
        committed[feed] = (committed[feed] ?? 0) + n;
        if (page.state === PROCESSED && covers(committed, parseCounts(page.produced))) this.#markDone(key);
        else set.run(JSON.stringify(committed), key);
      }
      const storedId = row.stored ? (JSON.parse(row.stored) as FeedClosed).batchId : batchId;
      this.#q(
        "INSERT INTO feeds (feed, last_batch_id) VALUES (?, ?) ON CONFLICT (feed) DO UPDATE SET last_batch_id = max(last_batch_id, excluded.last_batch_id)",
      ).run(feed, storedId);
      this.#q("DELETE FROM batches WHERE feed = ? AND batch_id = ?").run(feed, batchId);
    });
  }

  async discardBatch(feed: string, batchId: number): Promise<void> {
    this.#tx(() => {
      this.#q("DELETE FROM batches WHERE feed = ? AND batch_id = ?").run(feed, batchId);
    });
  }

  async lastBatchIds(): Promise<Record<string, number>> {
    const rows = this.#q("SELECT feed, last_batch_id FROM feeds").all() as { feed: string; last_batch_id: number }[];
    return Object.fromEntries(rows.map((r) => [r.feed, r.last_batch_id]));
  }

  async queuedCount(): Promise<number> {
    return (this.#q("SELECT count(*) AS n FROM pages WHERE state = 0").get() as { n: number }).n;
  }

  async markFinished(reason: string): Promise<void> {
    this.#tx(() => this.#setMeta("finished", reason), true);
  }

  /** A consistent copy of the whole state in one file (VACUUM INTO: compact, no WAL), e.g. to checkpoint it elsewhere. */
  snapshotTo(file: string): void {
    this.#d.exec(`VACUUM INTO '${file.replaceAll("'", "''")}'`);
  }

  async close(): Promise<void> {
    const db = this.#db;
    if (!db) return;
    this.#stmts.clear();
    this.#db = undefined;
    db.close();
  }
}
