// The frontier: a FIFO queue of requests (breadth-first) whose memory stays
// bounded. At most `memoryLimit` requests live in memory at each end; the
// middle of the queue spills to JSON-lines segment files in a temp directory
// and is read back in order. Segments are written and read synchronously:
// a segment of a few thousand requests costs milliseconds, and it keeps the
// queue a plain data structure with no async ordering to get wrong.
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CrawlRequest } from "./request.ts";

export interface FrontierOptions {
  /** Requests kept in memory at the head and at the tail (default 10 000 each). */
  memoryLimit?: number;
  /** Where spill files go (default: the OS temp dir). */
  tmpDir?: string;
}

/** What the scheduler pulls from: this in-memory frontier, or the durable one of runner/state. */
export interface RequestQueue {
  /** Requests waiting; 0 only when nothing is left and nothing is on its way in. */
  readonly size: number;
  push(req: CrawlRequest): void;
  /** The next request, or undefined when none is ready right now. */
  shift(): CrawlRequest | undefined;
  close(): void;
}

export class Frontier implements RequestQueue {
  #head: CrawlRequest[] = [];
  #headPos = 0;
  #tail: CrawlRequest[] = [];
  #segments: string[] = [];
  #dir: string | undefined;
  #seq = 0;
  #size = 0;
  readonly #limit: number;
  readonly #tmpRoot: string;
  /** How many requests were written to disk so far (stats). */
  spilled = 0;

  constructor(opts: FrontierOptions = {}) {
    this.#limit = Math.max(1, opts.memoryLimit ?? 10_000);
    this.#tmpRoot = opts.tmpDir ?? tmpdir();
  }

  get size(): number {
    return this.#size;
  }

  /** Requests held in memory right now. */
  get inMemory(): number {
    return this.#head.length - this.#headPos + this.#tail.length;
  }

  push(req: CrawlRequest): void {
    this.#size++;
    if (this.#segments.length === 0 && this.#tail.length === 0 && this.#head.length - this.#headPos < this.#limit) {
      this.#head.push(req);
      return;
    }
    this.#tail.push(req);
    if (this.#tail.length >= this.#limit) this.#spill();
  }

  shift(): CrawlRequest | undefined {
    if (this.#headPos >= this.#head.length) this.#refill();
    if (this.#headPos >= this.#head.length) return undefined;
    const req = this.#head[this.#headPos] as CrawlRequest;
    this.#head[this.#headPos++] = undefined as never;
    this.#size--;
    return req;
  }

  /** Deletes the spill files. */
  close(): void {
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
    this.#dir = undefined;
    this.#segments = [];
    this.#head = [];
    this.#headPos = 0;
    this.#tail = [];
    this.#size = 0;
  }

  #spill(): void {
    this.#dir ??= mkdtempSync(join(this.#tmpRoot, "feedcrawl-frontier-"));
    const file = join(this.#dir, `segment-${String(this.#seq++).padStart(8, "0")}.jsonl`);
    writeFileSync(file, `${this.#tail.map((r) => JSON.stringify(r)).join("\n")}\n`);
    this.#segments.push(file);
    this.spilled += this.#tail.length;
    this.#tail = [];
  }

  #refill(): void {
    this.#head = [];
    this.#headPos = 0;
    const file = this.#segments.shift();
    if (file) {
      const text = readFileSync(file, "utf8");
      unlinkSync(file);
      for (const line of text.split("\n")) if (line) this.#head.push(JSON.parse(line) as CrawlRequest);
      return;
    }
    this.#head = this.#tail;
    this.#tail = [];
  }
}
