// One feed file being written: encoder text -> bytes in the feed's encoding ->
// compressors -> sha256 and byte count of exactly what is stored -> the storage sink.
// Small writes are gathered into 64 KiB chunks so zlib sees few, large writes.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { PassThrough, type Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Charset, ItemEncoder } from "./formats/encoder.ts";
import type { BatchSink } from "./storages/types.ts";

const GATHER_BYTES = 64 * 1024;

export class Batch {
  batchId: number;
  uri: string;
  readonly openedAt = new Date();
  items = 0;
  /** Items per page key in this batch (a crawl with a state: what committing it covers). */
  readonly pages = new Map<string, number>();
  /** Bytes that reached the storage so far (after compression). */
  storedBytes = 0;
  readonly sink: BatchSink;
  private readonly encoder: ItemEncoder;
  private readonly toBytes: (text: string) => Buffer;
  private readonly head: PassThrough;
  private readonly done: Promise<void>;
  private readonly hash = createHash("sha256");
  private pending: string[] = [];
  private pendingLength = 0;
  private failure: Error | undefined;

  constructor(init: {
    batchId: number;
    uri: string;
    encoder: ItemEncoder;
    encoding: Charset;
    compressors: Transform[];
    sink: BatchSink;
  }) {
    ({ batchId: this.batchId, uri: this.uri, encoder: this.encoder, sink: this.sink } = init);
    this.toBytes = init.encoding.newEncoder();
    this.head = new PassThrough();
    const tap = new Writable({
      write: (chunk: Buffer, _enc, callback) => {
        this.hash.update(chunk);
        this.storedBytes += chunk.length;
        this.sink.write(chunk).then(() => callback(), callback);
      },
    });
    this.done = pipeline([this.head, ...init.compressors, tap]);
    this.done.catch((err) => {
      this.failure = err as Error;
    });
  }

  /** Adds one item. Throws UnserializableItemError (nothing written) for an item that cannot be encoded. */
  async add(fields: Readonly<Record<string, unknown>>): Promise<void> {
    const text = this.encoder.item(fields);
    this.items++;
    this.pending.push(text);
    this.pendingLength += text.length;
    if (this.pendingLength >= GATHER_BYTES) await this.flush();
  }

  /** Stored bytes plus what is still gathered (uncompressed): a conservative size for batchMaxBytes. */
  get approxBytes(): number {
    return this.storedBytes + this.pendingLength;
  }

  private async flush(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.pendingLength === 0) return;
    const chunk = this.toBytes(this.pending.join(""));
    this.pending = [];
    this.pendingLength = 0;
    if (!this.head.write(chunk)) await Promise.race([once(this.head, "drain"), this.done]);
  }

  /** Ends the file (the format's closing text, the compressor's trailer); resolves when every byte reached the sink. */
  async end(): Promise<{ bytes: number; sha256: string }> {
    this.pending.push(this.encoder.end());
    this.pendingLength += 1;
    await this.flush();
    this.head.end();
    await this.done;
    return { bytes: this.storedBytes, sha256: this.hash.digest("hex") };
  }

  /** Stops the pipeline without storing anything. */
  async abandon(): Promise<void> {
    this.head.destroy();
    await this.done.catch(() => {});
    await this.sink.discard();
  }
}
