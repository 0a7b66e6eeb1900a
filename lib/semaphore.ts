// A counting semaphore: at most `size` holders at once, waiters served first in,
// first out. Used for upload slots and per-host delivery limits.

export class Semaphore {
  #free: number;
  readonly #waiting: Array<() => void> = [];

  readonly size: number;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`semaphore size must be a positive integer, got ${size}`);
    this.size = size;
    this.#free = size;
  }

  /** Holders right now. */
  get active(): number {
    return this.size - this.#free;
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  /** Hands the slot straight to the next waiter, or frees it. */
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else if (this.#free < this.size) this.#free++;
  }

  /** Runs `task` holding a slot. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await task();
    } finally {
      this.release();
    }
  }
}
