// file:// and plain paths. A batch is written to a hidden temp file next to its target
// and linked into place at the end: link(2) fails when the name exists, so this is an
// exclusive create (like open's "wx") that never shows a partial file. overwrite: true
// renames. A batch that cannot be stored is never deleted: its temp file is renamed to a
// visible `unstored-<hex>-<name>` beside the target. An open temp file is touched every
// minute, so a later run tells a killed run's leftovers (removed) from a live run's.
import { randomBytes } from "node:crypto";
import { access, type FileHandle, link, lstat, mkdir, open, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { parseFeedLocation } from "../../../spec/feed-location.ts";
import {
  AlreadyExistsError,
  type BatchSink,
  type FeedStorage,
  type FinishOptions,
  StoreFailedError,
  type StoreTarget,
} from "./types.ts";

/** feedcrawl's own temp names: a batch's `.items.jsonl.1a2b3c4d.part`, the start check's probe. */
const OWN_TEMP = /^\..+\.[0-9a-f]{8}\.part$|^\.feedcrawl-write-check-[0-9a-f]{8}$/;
/** Open temp files are touched this often… */
const HEARTBEAT_MS = 60_000;
/** …so one untouched for this long belongs to a run that is gone. */
const STALE_AFTER_MS = 10 * 60_000;

function localPath(uri: string): string {
  const loc = parseFeedLocation(uri);
  if (loc.kind !== "file") throw new Error(`Feed URI ${uri} is not a file path`);
  return loc.path;
}

/** The folder of a folder URI ("…/") or of a file URI. */
function folderOf(folderUri: string): string {
  return folderUri.endsWith("/") || folderUri === "" ? localPath(folderUri || ".") : path.dirname(localPath(folderUri));
}

const hex = () => randomBytes(4).toString("hex");

function tempPath(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${hex()}.part`);
}

async function writeAll(handle: FileHandle, chunk: Uint8Array) {
  let offset = 0;
  while (offset < chunk.length) offset += (await handle.write(chunk, offset)).bytesWritten;
}

/** One batch's temp file, linked (or renamed) into place by `finish`. */
class FileBatch implements BatchSink {
  readonly #target: StoreTarget;
  readonly #temp: string;
  readonly #handle: FileHandle;
  readonly #heartbeat: NodeJS.Timeout;
  #final: string;
  #closed = false;
  #keptAt: Promise<string | undefined> | undefined;

  constructor(target: StoreTarget, final: string, temp: string, handle: FileHandle) {
    this.#target = target;
    this.#final = final;
    this.#temp = temp;
    this.#handle = handle;
    this.#heartbeat = setInterval(() => {
      const now = new Date();
      handle.utimes(now, now).catch(() => {});
    }, HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  static async open(target: StoreTarget): Promise<FileBatch> {
    const final = localPath(target.uri);
    await mkdir(path.dirname(final), { recursive: true });
    const temp = tempPath(final);
    return new FileBatch(target, final, temp, await open(temp, "wx"));
  }

  write(chunk: Uint8Array): Promise<void> {
    return writeAll(this.#handle, chunk);
  }

  async finish({ onConflict }: FinishOptions): Promise<string> {
    try {
      await this.#handle.datasync();
      await this.#close();
      for (;;) {
        if (this.#target.overwrite) {
          await rename(this.#temp, this.#final);
          return `file://${this.#final}`;
        }
        try {
          await link(this.#temp, this.#final);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
          const next = onConflict();
          if (next === undefined)
            throw new AlreadyExistsError(`${this.#final} already exists (set overwrite: true to replace it)`);
          this.#final = localPath(next);
          await mkdir(path.dirname(this.#final), { recursive: true });
          continue;
        }
        // Stored: a temp link left by a failed unlink is only a second name of it (removed as stale later).
        await rm(this.#temp).catch(() => {});
        return `file://${this.#final}`;
      }
    } catch (err) {
      const keptAt = await this.keep();
      if (err instanceof StoreFailedError) {
        err.keptAt = keptAt;
        throw err;
      }
      throw new StoreFailedError(`storing ${this.#final} failed: ${(err as Error).message}`, keptAt, { cause: err });
    }
  }

  async discard(): Promise<void> {
    await this.#close().catch(() => {});
    await rm(this.#temp, { force: true });
  }

  keep(): Promise<string | undefined> {
    this.#keptAt ??= this.#keep();
    return this.#keptAt;
  }

  async #keep(): Promise<string | undefined> {
    await this.#close().catch(() => {});
    // Out of the temp-name pattern, so that no later run takes it for a killed run's leftover.
    const kept = path.join(path.dirname(this.#temp), `unstored-${hex()}-${path.basename(localPath(this.#target.uri))}`);
    try {
      await rename(this.#temp, kept);
      return kept;
    } catch {
      return access(this.#temp).then(
        () => this.#temp,
        () => undefined,
      );
    }
  }

  async #close(): Promise<void> {
    clearInterval(this.#heartbeat);
    if (this.#closed) return;
    this.#closed = true;
    await this.#handle.close();
  }
}

export function createFileStorage(): FeedStorage {
  return {
    async check(folderUri) {
      const dir = folderOf(folderUri);
      try {
        await mkdir(dir, { recursive: true });
        const probe = path.join(dir, `.feedcrawl-write-check-${hex()}`);
        await (await open(probe, "wx")).close();
        await rm(probe);
      } catch (err) {
        throw new Error(`cannot create files in ${dir}: ${(err as Error).message}`);
      }
    },

    async exists(uri) {
      return access(localPath(uri)).then(
        () => true,
        () => false,
      );
    },

    open: (target) => FileBatch.open(target),

    async remove(uri) {
      await rm(localPath(uri), { force: true });
    },

    async removeStale(folderUri) {
      const dir = folderOf(folderUri);
      const cutoff = Date.now() - STALE_AFTER_MS;
      const removed: string[] = [];
      for (const name of await readdir(dir).catch(() => [])) {
        if (!OWN_TEMP.test(name)) continue;
        const file = path.join(dir, name);
        const info = await lstat(file).catch(() => undefined);
        // A live run touches its temp files every minute: only old ones are a killed run's.
        if (!info?.isFile() || info.mtimeMs > cutoff) continue;
        if (
          await rm(file).then(
            () => true,
            () => false,
          )
        )
          removed.push(file);
      }
      return removed;
    },

    async putSmall(uri, body) {
      const final = localPath(uri);
      await mkdir(path.dirname(final), { recursive: true });
      const temp = tempPath(final);
      const handle = await open(temp, "wx");
      try {
        await handle.writeFile(body);
        await handle.datasync();
      } finally {
        await handle.close();
      }
      try {
        await link(temp, final);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new AlreadyExistsError(`${final} already exists`);
        throw err;
      } finally {
        await rm(temp, { force: true });
      }
    },
  };
}
