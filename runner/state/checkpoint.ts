// A runner shard's crawl state when there is no Redis frontier: the embedded
// SQLite state on the pod's disk, checkpointed to the feed bucket, so the next
// pod of the shard (a reschedule, a Job retry, a resume after suspend)
// continues the crawl. A checkpoint is taken after every `beginBatch` (before
// the batch's upload can complete) and every `batchStored` (before its
// CrawlFeed is created). So the newest checkpoint knows every object that may
// be in the bucket (a restored state deletes the ones never reported) and
// every batch that may have been reported (it is reported again, AlreadyExists,
// and committed instead of redone). What a restored state lacks (the steps
// after its checkpoint) is only work to redo.
import { existsSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import type { Logger } from "pino";
import type { FeedClosed } from "../../crds/schema/crawlfeed.ts";
import { SqliteState, type SqliteStateOptions } from "./sqlite.ts";
import type { PendingBatch, StateOpening } from "./types.ts";

/** Where a checkpoint is kept (S3: s3-checkpoint.ts). */
export interface CheckpointStore {
  /** For logs: the checkpoint's URI. */
  readonly uri: string;
  /** Replaces the checkpoint with the local file. */
  put(file: string): Promise<void>;
  /** Writes the checkpoint into the local file; false when there is none. */
  get(file: string): Promise<boolean>;
}

export class CheckpointedState extends SqliteState {
  readonly #store: CheckpointStore;
  readonly #log: Logger;
  /** The checkpoint being written, and the one queued after it (taken once the first is done). */
  #current: Promise<void> | undefined;
  #next: Promise<void> | undefined;
  #seq = 0;

  constructor(opts: SqliteStateOptions & { store: CheckpointStore; logger: Logger }) {
    super(opts);
    this.#store = opts.store;
    this.#log = opts.logger;
  }

  /** A state left on this disk (the same pod's container restarted) is newer than any checkpoint: it is used first. */
  override async open(): Promise<StateOpening> {
    if (!existsSync(this.file)) {
      const fetched = `${this.file}.restore`;
      if (await this.#store.get(fetched)) {
        await rename(fetched, this.file);
        this.#log.info({ checkpoint: this.#store.uri }, `Crawl state restored from ${this.#store.uri}`);
      }
    }
    return super.open();
  }

  override async beginBatch(batch: PendingBatch): Promise<void> {
    await super.beginBatch(batch);
    await this.checkpoint();
  }

  override async batchStored(feed: string, batchId: number, closed: FeedClosed): Promise<void> {
    await super.batchStored(feed, batchId, closed);
    await this.checkpoint();
  }

  override async markFinished(reason: string): Promise<void> {
    await super.markFinished(reason);
    await this.checkpoint();
  }

  /**
   * Writes a checkpoint that includes every step taken before this call.
   * Calls while one is being written share the next one.
   */
  checkpoint(): Promise<void> {
    if (this.#next) return this.#next;
    const after = this.#current ?? Promise.resolve();
    const next = after
      .catch(() => {})
      .then(() => {
        this.#next = undefined;
        this.#current = next;
        return this.#write();
      })
      .finally(() => {
        if (this.#current === next) this.#current = undefined;
      });
    this.#next = next;
    return next;
  }

  async #write(): Promise<void> {
    const file = `${this.file}.checkpoint-${this.#seq++}`;
    try {
      this.snapshotTo(file);
      await this.#store.put(file);
    } finally {
      await rm(file, { force: true });
    }
  }
}
