// Shared by the feed tests: a quiet logger, deterministic items, and an independent
// reader that decompresses and parses a stored feed file.
import { createHash } from "node:crypto";
import zlib from "node:zlib";
import { parse as parseCsv } from "csv-parse/sync";
import { pino } from "pino";
import type { Item } from "../../runner/item.ts";

export const quietLogger = () => pino({ level: process.env.FEEDCRAWL_TEST_LOG ?? "silent" });

export function makeItem(i: number, type = "product"): Item {
  return {
    type,
    fields: { id: i, title: `Book ${i} "quoted", with comma`, price: (i % 97) + 0.5, tags: [`t${i % 5}`, "x"] },
  };
}

/** Asserts that `ids` is exactly 0..n-1 in order, with a short message (a deepEqual diff of 100k numbers takes minutes). */
export function assertIdRange(ids: number[], n: number, what = "ids") {
  const firstWrong = ids.findIndex((v, i) => v !== i);
  if (ids.length !== n || firstWrong >= 0) {
    const at = firstWrong >= 0 ? firstWrong : Math.min(ids.length, n);
    throw new Error(
      `${what}: expected 0..${n - 1}, got ${ids.length} ids; first difference at index ${at}: ${JSON.stringify(ids.slice(Math.max(0, at - 2), at + 3))}`,
    );
  }
}

export const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Decompresses by what the file says it is (postprocessing list). */
export function decompress(body: Buffer, compression: string | undefined): Buffer {
  let out = body;
  const steps = !compression || compression === "none" ? [] : compression.split(",");
  for (const step of steps.reverse()) {
    if (step === "gzip") out = zlib.gunzipSync(out);
    else if (step === "brotli") out = zlib.brotliDecompressSync(out);
    else if (step === "zstd") out = zlib.zstdDecompressSync(out);
    else throw new Error(`unknown compression ${step}`);
  }
  return out;
}

/** Parses a feed file's text into records, by format, with standard parsers. */
export function parseFeed(text: string, format: string): Record<string, unknown>[] {
  if (format === "jsonlines") {
    return text
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l));
  }
  if (format === "json") {
    const value = JSON.parse(text);
    if (!Array.isArray(value)) throw new Error("JSON feed is not an array");
    return value;
  }
  if (format === "csv") return parseCsv(text, { columns: true }) as Record<string, unknown>[];
  throw new Error(`no parser for ${format}`);
}

/** A logger whose JSON lines are kept for assertions. */
export function capturingLogger() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const logger = pino(
    { level: "debug" },
    {
      write(line: string) {
        lines.push(JSON.parse(line));
      },
    },
  );
  return { logger, lines };
}
