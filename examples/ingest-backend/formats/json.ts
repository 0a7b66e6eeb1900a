// A JSON array of objects, streamed: a small scanner finds where each
// top-level element starts and ends (tracking strings, escapes and nesting),
// and V8's own JSON.parse checks that element strictly. Only one element is
// ever held, so memory stays flat whatever the file's size. Between elements
// only whitespace and commas are allowed; the array must close with `]`.
import { FeedDataError } from "../errors.ts";
import { MAX_ITEM_CHARS, type ParsedItem } from "./item.ts";

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/** start: before `[`; first: after `[`; comma: after `,`; item: inside an element; after: after one; done: after `]`. */
type State = "start" | "first" | "comma" | "item" | "after" | "done";

class ArrayScanner {
  state: State = "start";
  line = 1;
  itemNo = 0;
  itemLine = 0;
  depth = 0;
  inString = false;
  escaped = false;
  parts: string[] = [];
  held = 0;

  /** The elements completed in `chunk`. */
  scan(chunk: string): ParsedItem[] {
    const done: ParsedItem[] = [];
    let from = this.state === "item" ? 0 : -1;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c === LF) this.line += 1;
      if (this.state === "item") {
        if (!this.inElement(c)) continue;
        this.parts.push(chunk.slice(from, i + 1));
        done.push(this.element());
        from = -1;
        continue;
      }
      if (c === SPACE || c === LF || c === CR || c === TAB) continue;
      if ((this.state === "first" || this.state === "comma") && c === OPEN_OBJECT) {
        this.itemNo += 1;
        this.itemLine = this.line;
        this.state = "item";
        this.depth = 1;
        from = i;
        continue;
      }
      this.between(c);
    }
    if (this.state === "item") {
      const part = chunk.slice(from);
      this.held += part.length;
      if (this.held > MAX_ITEM_CHARS) {
        throw new FeedDataError(`item ${this.itemNo} (line ${this.itemLine}) is over ${MAX_ITEM_CHARS} chars`);
      }
      this.parts.push(part);
    }
    return done;
  }

  /** One character inside an element; true when it closes the element. */
  inElement(c: number): boolean {
    if (this.inString) {
      if (this.escaped) this.escaped = false;
      else if (c === BACKSLASH) this.escaped = true;
      else if (c === QUOTE) this.inString = false;
      return false;
    }
    if (c === QUOTE) this.inString = true;
    else if (c === OPEN_OBJECT || c === OPEN_ARRAY) this.depth += 1;
    else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) this.depth -= 1;
    return this.depth === 0;
  }

  /** A non-space character outside any element: `[`, `,` or `]` where they belong, else an error. */
  between(c: number): void {
    if (this.state === "start" && c === OPEN_ARRAY) this.state = "first";
    else if (this.state === "first" && c === CLOSE_ARRAY) this.state = "done";
    else if (this.state === "after" && c === COMMA) this.state = "comma";
    else if (this.state === "after" && c === CLOSE_ARRAY) this.state = "done";
    else throw new FeedDataError(this.unexpected(String.fromCharCode(c)));
  }

  unexpected(char: string): string {
    const at = `line ${this.line}`;
    switch (this.state) {
      case "start":
        return `is not a JSON array: ${JSON.stringify(char)} at ${at}, expected "["`;
      case "first":
      case "comma":
        return char === "]"
          ? `has a trailing comma before "]" at ${at}`
          : `item ${this.itemNo + 1} (${at}) is not a JSON object`;
      case "after":
        return `has ${JSON.stringify(char)} after item ${this.itemNo} at ${at}, expected "," or "]"`;
      default:
        return `has ${JSON.stringify(char)} after the array's closing "]" at ${at}`;
    }
  }

  element(): ParsedItem {
    const json = this.parts.join("");
    this.parts = [];
    this.held = 0;
    this.state = "after";
    const where = `item ${this.itemNo} (line ${this.itemLine})`;
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(json);
    } catch (err) {
      throw new FeedDataError(`${where} is not valid JSON: ${(err as Error).message}`);
    }
    return { lineNo: this.itemNo, where, value, json };
  }

  end(): void {
    if (this.state === "done") return;
    if (this.state === "start") throw new FeedDataError(`is empty: expected a JSON array`);
    throw new FeedDataError(
      this.state === "item"
        ? `ends inside item ${this.itemNo} (line ${this.itemLine}): the file is truncated`
        : `ends after item ${this.itemNo} without the array's closing "]": the file is truncated`,
    );
  }
}

export async function* parseJsonArray(text: AsyncIterable<string>): AsyncGenerator<ParsedItem> {
  const scanner = new ArrayScanner();
  for await (const chunk of text) yield* scanner.scan(chunk);
  scanner.end();
}
