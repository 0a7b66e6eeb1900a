// JSON Lines: one object per line; blank lines are skipped but counted.
import { FeedDataError } from "../errors.ts";
import { MAX_ITEM_CHARS, type ParsedItem } from "./item.ts";

function item(text: string, lineNo: number): ParsedItem | undefined {
  const line = text.endsWith("\r") ? text.slice(0, -1) : text;
  if (line.trim() === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new FeedDataError(`line ${lineNo} is not JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new FeedDataError(`line ${lineNo} is not a JSON object`);
  }
  return { lineNo, where: `line ${lineNo}`, value: value as Record<string, unknown>, json: line };
}

export async function* parseJsonLines(text: AsyncIterable<string>): AsyncGenerator<ParsedItem> {
  let lineNo = 0;
  let rest = "";
  for await (const chunk of text) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop() as string;
    if (rest.length > MAX_ITEM_CHARS) throw new FeedDataError(`line ${lineNo + 1} is over ${MAX_ITEM_CHARS} chars`);
    for (const part of parts) {
      const parsed = item(part, ++lineNo);
      if (parsed) yield parsed;
    }
  }
  const last = rest === "" ? undefined : item(rest, ++lineNo);
  if (last) yield last;
}
