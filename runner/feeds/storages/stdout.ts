// stdout: — the bytes go straight to the process's standard output (or a stream given
// for tests). No atomicity and no batching: what is written is shown at once.
import { once } from "node:events";
import type { Writable } from "node:stream";
import type { BatchSink, FeedStorage } from "./types.ts";

export function createStdoutStorage(out: Writable = process.stdout): FeedStorage {
  return {
    async check() {},
    async exists() {
      return false;
    },
    async open(): Promise<BatchSink> {
      return {
        async write(chunk) {
          if (!out.write(chunk)) await once(out, "drain");
        },
        async finish() {
          return "stdout:";
        },
        async discard() {},
        // What was written is already out: there is nothing left to keep.
        async keep() {
          return undefined;
        },
      };
    },
    async putSmall() {
      throw new Error("stdout: cannot hold a manifest");
    },
  };
}
