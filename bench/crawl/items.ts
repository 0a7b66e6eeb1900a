// Counts a tool's jsonlines output and checks it against the fixture's truth,
// so a fast crawler that drops or garbles items cannot win.
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { isDeepStrictEqual } from "node:util";
import type { Catalogue } from "../../test/fixtures/catalogue.ts";

export interface ItemCheck {
  items: number;
  /** Items whose every expected field equals the fixture's value. */
  correct: number;
  duplicates: number;
  /** A few differences, for the log. */
  samples: string[];
}

export async function checkItems(file: string, catalogue: Catalogue, baseUrl: string): Promise<ItemCheck> {
  const idOf = /_(\d+)\/index\.html$/;
  const seen = new Set<string>();
  const result: ItemCheck = { items: 0, correct: 0, duplicates: 0, samples: [] };
  let stream: ReturnType<typeof createReadStream>;
  try {
    stream = createReadStream(file);
    await new Promise((resolve, reject) => stream.once("open", resolve).once("error", reject));
  } catch {
    return result;
  }
  for await (const line of createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY })) {
    if (!line.trim()) continue;
    result.items++;
    let item: Record<string, unknown>;
    try {
      item = JSON.parse(line);
    } catch {
      if (result.samples.length < 3) result.samples.push(`not JSON: ${line.slice(0, 120)}`);
      continue;
    }
    // feedcrawl may write { type, fields } or the bare fields; compare the fields.
    const fields = (typeof item.fields === "object" && item.fields ? item.fields : item) as Record<string, unknown>;
    const url = String(fields.url ?? "");
    if (seen.has(url)) result.duplicates++;
    seen.add(url);
    const id = Number(idOf.exec(url)?.[1]);
    if (!Number.isInteger(id) || id < 1 || id > catalogue.products) {
      if (result.samples.length < 3) result.samples.push(`unknown url ${url}`);
      continue;
    }
    const expected = catalogue.expectedItem(id, baseUrl).fields;
    const diffs = Object.keys(expected).filter((k) => !isDeepStrictEqual(fields[k], expected[k]));
    if (diffs.length === 0) result.correct++;
    else if (result.samples.length < 3) {
      result.samples.push(
        `${url}: ${diffs.map((k) => `${k}=${JSON.stringify(fields[k])} expected ${JSON.stringify(expected[k])}`).join(", ")}`,
      );
    }
  }
  return result;
}
