// The on-disk spool of compressed batches bound for S3. Every byte of an S3 batch is
// appended here first; the multipart upload reads it back as it grows (so S3 never
// slows the crawl down while there is room) and re-reads it from the start when an
// upload has to be retried (so an S3 outage loses nothing). A batch's file is deleted
// once S3 confirmed the object. The total size is bounded: past `maxBytes` the exporter
// closes open batches and makes `write` wait for uploads to catch up.
import { randomBytes } from "node:crypto";
import { EventEmitter, once } from "node:events";
import { type FileHandle, mkdir, open, rm } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";

export class Spool extends EventEmitter {
  readonly dir: string;
  readonly maxBytes: number;
  /** Bytes held by files not yet released. */
  used = 0;

  constructor(dir: string, maxBytes: number) {
    super();
    this.dir = dir;
    this.maxBytes = maxBytes;
  }

  get full(): boolean {
    return this.used > this.maxBytes;
  }

  async create(label: string): Promise<SpoolFile> {
    await mkdir(this.dir, { recursive: true });
    const safe = label.replace(/[^A-Za-z0-9._-]+/g, "_").slice(-80);
    const file = path.join(this.dir, `${Date.now()}-${randomBytes(4).toString("hex")}-${safe}`);
    return new SpoolFile(this, file, await open(file, "wx"));
  }

  /** Resolves at the next release of spool space (or after `ms`). */
  async released(ms: number): Promise<void> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), ms);
    try {
      await once(this, "release", { signal: ac.signal });
    } catch {
      // timed out: the caller re-checks
    } finally {
      clearTimeout(timer);
    }
  }

  /** @internal */
  account(delta: number) {
    this.used += delta;
    if (delta < 0) this.emit("release");
  }
}

export class SpoolFile extends EventEmitter {
  readonly path: string;
  private readonly spool: Spool;
  private readonly handle: FileHandle;
  /** Bytes appended (and readable). */
  written = 0;
  finished = false;
  private released = false;

  constructor(spool: Spool, file: string, handle: FileHandle) {
    super();
    this.spool = spool;
    this.path = file;
    this.handle = handle;
  }

  async append(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const { bytesWritten } = await this.handle.write(chunk, offset, chunk.length - offset, this.written + offset);
      offset += bytesWritten;
    }
    this.written += chunk.length;
    this.spool.account(chunk.length);
    this.emit("grow");
  }

  /** No more bytes: readers end at `written`. */
  async finish(): Promise<void> {
    await this.handle.datasync();
    await this.handle.close();
    this.finished = true;
    this.emit("grow");
  }

  /** A reader from the start that follows the file as it grows and ends after `finish`. */
  tail(chunkSize = 256 * 1024): Readable {
    let position = 0;
    let reader: FileHandle | undefined;
    const file = this;
    return new Readable({
      async read() {
        try {
          reader ??= await open(file.path, "r");
          for (;;) {
            if (position < file.written) {
              const length = Math.min(chunkSize, file.written - position);
              const buffer = Buffer.allocUnsafe(length);
              const { bytesRead } = await reader.read(buffer, 0, length, position);
              position += bytesRead;
              this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead));
              return;
            }
            if (file.finished) {
              this.push(null);
              return;
            }
            await once(file, "grow");
          }
        } catch (err) {
          this.destroy(err as Error);
        }
      },
      async destroy(err, callback) {
        try {
          await reader?.close();
        } finally {
          callback(err);
        }
      },
    });
  }

  /** Deletes the file and gives its space back to the spool. */
  async remove(): Promise<void> {
    if (!this.finished) await this.handle.close().catch(() => {});
    this.finished = true;
    this.emit("grow");
    await rm(this.path, { force: true });
    this.release();
  }

  /** Gives the space back but keeps the file (a batch that finally failed: kept for recovery). */
  release() {
    if (this.released) return;
    this.released = true;
    this.spool.account(-this.written);
  }
}
