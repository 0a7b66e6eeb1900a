// XML as the exporter writes it (Scrapy's XmlItemExporter layout):
// <items><item><field>text</field>…</item>…</items>, whatever the root and item
// element names. Streamed with htmlparser2 in xmlMode: each <item> becomes an
// object as soon as it closes. A field with only text is that string ("" when
// empty: the exporter writes null, "" and [] alike); a field whose children
// are all <value> is a list; other children make a nested object. Attributes,
// comments and processing instructions are ignored. An element left open (a
// truncated file) or closed out of order is a data error naming the item.
import { Parser } from "htmlparser2";
import { FeedDataError } from "../errors.ts";
import { MAX_ITEM_CHARS, type ParsedItem } from "./item.ts";

interface XmlNode {
  name: string;
  /** Where its open tag starts: a self-closing tag is "closed" at that same index. */
  openStart: number;
  text: string;
  children: [string, unknown][];
}

/** Children as an object; two children of one name are refused (the exporter never writes them). */
function asObject(node: XmlNode, where: string): Record<string, unknown> {
  const value: Record<string, unknown> = Object.create(null); // "__proto__" is a field like any other
  for (const [name, child] of node.children) {
    if (Object.hasOwn(value, name)) throw new FeedDataError(`${where} has <${name}> twice in <${node.name}>`);
    value[name] = child;
  }
  return value;
}

function fieldValue(node: XmlNode, where: string): unknown {
  if (node.children.length === 0) return node.text;
  if (node.text.trim() !== "") throw new FeedDataError(`${where} mixes text and elements in <${node.name}>`);
  if (node.children.every(([name]) => name === "value")) return node.children.map(([, value]) => value);
  return asObject(node, where);
}

class XmlItems {
  readonly stack: XmlNode[] = [];
  readonly ready: ParsedItem[] = [];
  rootClosed = false;
  ending = false;
  itemNo = 0;
  held = 0;
  readonly parser: Parser;

  constructor() {
    this.parser = new Parser(
      {
        onopentag: (name) => this.open(name),
        ontext: (text) => this.text(text),
        onclosetag: (name, implied) => this.close(name, implied),
      },
      { xmlMode: true, decodeEntities: true },
    );
  }

  get where(): string {
    return `item ${this.itemNo}`;
  }

  open(name: string): void {
    if (this.rootClosed) throw new FeedDataError(`has a second root element <${name}> after item ${this.itemNo}`);
    if (this.stack.length === 1) {
      this.itemNo += 1;
      this.held = 0;
    }
    this.stack.push({ name, openStart: this.parser.startIndex, text: "", children: [] });
  }

  text(text: string): void {
    const top = this.stack.at(-1);
    if (!top || this.stack.length < 3) {
      // Outside any field only layout whitespace may stand.
      if (text.trim() === "") return;
      const place = !top ? "outside the root element" : this.stack.length === 1 ? "between items" : "outside a field";
      throw new FeedDataError(`has text ${place} (${this.where}): ${JSON.stringify(text.trim().slice(0, 40))}`);
    }
    this.held += text.length;
    if (this.held > MAX_ITEM_CHARS) throw new FeedDataError(`${this.where} is over ${MAX_ITEM_CHARS} chars`);
    top.text += text;
  }

  close(name: string, implied: boolean): void {
    const node = this.stack.pop() as XmlNode;
    if (implied && this.parser.startIndex !== node.openStart) {
      throw new FeedDataError(
        this.ending
          ? `ends inside <${name}> (${this.where}): the file is truncated`
          : `${this.where}: <${name}> is not closed before the end tag at character ${this.parser.startIndex}`,
      );
    }
    const parent = this.stack.at(-1);
    if (!parent) {
      this.rootClosed = true;
    } else if (this.stack.length === 1) {
      const value = asObject(node, this.where);
      this.ready.push({ lineNo: this.itemNo, where: this.where, value, json: JSON.stringify(value) });
    } else {
      parent.children.push([node.name, fieldValue(node, this.where)]);
    }
  }

  take(): ParsedItem[] {
    return this.ready.splice(0);
  }

  end(): void {
    this.ending = true;
    this.parser.end();
    if (!this.rootClosed) throw new FeedDataError("has no root element: expected <items>…</items>");
  }
}

export async function* parseXml(text: AsyncIterable<string>): AsyncGenerator<ParsedItem> {
  const items = new XmlItems();
  for await (const chunk of text) {
    items.parser.write(chunk);
    yield* items.take();
  }
  items.end();
  yield* items.take();
}
