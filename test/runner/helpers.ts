// Shared bits for the runner tests: an in-memory item sink, a logger whose
// lines the test can read, and the books-local spider pointed at a fixture server.
import { readFileSync } from "node:fs";
import { Writable } from "node:stream";
import { pino } from "pino";
import { parse } from "yaml";
import type { SpiderSpec } from "../../crds/schema/spider.ts";
import type { Item, ItemSink } from "../../runner/item.ts";

export class MemorySink implements ItemSink {
  readonly items: Item[] = [];
  closed: string[] = [];
  writeDelayMs = 0;
  async write(item: Item): Promise<void> {
    if (this.closed.length) throw new Error("write after close");
    if (this.writeDelayMs) await new Promise((r) => setTimeout(r, this.writeDelayMs));
    this.items.push(item);
  }
  async close(reason: string): Promise<void> {
    this.closed.push(reason);
  }
}

export function captureLogger(level = "debug") {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split("\n")) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

const example = parse(readFileSync(new URL("../../examples/books-local.yaml", import.meta.url), "utf8")) as {
  spec: { spider: SpiderSpec };
};

/** examples/books-local.yaml's spider, started at `baseUrl`, with the trap links followed too. */
export function booksSpider(
  baseUrl: string,
  opts: { traps?: boolean; settings?: SpiderSpec["settings"] } = {},
): SpiderSpec {
  const spider = structuredClone(example.spec.spider);
  spider.startUrls = [`${baseUrl}/`];
  if (opts.traps) spider.follow = [...(spider.follow ?? []), { selector: "aside.traps a" }];
  spider.settings = { ...spider.settings, ...opts.settings };
  return spider;
}

/** Items as sortable strings (field order independent). */
export function itemKeys(items: readonly Item[]): string[] {
  return items
    .map((i) =>
      JSON.stringify({
        type: i.type,
        fields: Object.fromEntries(Object.entries(i.fields).sort(([a], [b]) => a.localeCompare(b))),
      }),
    )
    .sort();
}
