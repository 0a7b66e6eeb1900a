// XML like Scrapy's XmlItemExporter: <items><item><field>value</field>…</item></items>;
// lists become <value> children, objects nested elements. Text the output encoding
// cannot hold becomes character references; characters XML 1.0 forbids become U+FFFD.
import { type Charset, type EncoderOptions, type ItemEncoder, UnserializableItemError } from "./encoder.ts";
import { selectFields } from "./values.ts";

// XML 1.0 Name, ASCII subset plus anything non-ASCII; no "xml" prefix games.
const XML_NAME = /^[A-Za-z_\u00C0-\uFFFF][-A-Za-z0-9._\u00B7\u00C0-\uFFFF]*$/;
const FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

export function escapeXmlText(text: string, cs: Charset): string {
  let out = text.replace(FORBIDDEN, "\uFFFD").replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
  if (!cs.unicode) {
    // Whole code points, so that a surrogate pair becomes one reference.
    out = out.replace(/[^\u0000-\u007f]/gu, (c) => {
      const cp = c.codePointAt(0) ?? 0xfffd;
      return cs.fits(cp) ? c : `&#x${cp.toString(16).toUpperCase()};`;
    });
  }
  return out;
}

function elementName(name: string): string {
  if (!XML_NAME.test(name))
    throw new UnserializableItemError(`field name ${JSON.stringify(name)} is not an XML element name`);
  return name;
}

export function createXmlEncoder(opts: EncoderOptions): ItemEncoder {
  const indent = opts.indent && opts.indent > 0 ? opts.indent : 0;
  const root = elementName(opts.xmlRootElement ?? "items");
  const itemName = elementName(opts.xmlItemElement ?? "item");
  const declaredEncoding = opts.encoding.name;
  let started = false;
  const nl = (depth: number) => (indent ? "\n" + " ".repeat(indent * depth) : "");

  const field = (name: string, value: unknown, depth: number): string => {
    const open = `${nl(depth)}<${elementName(name)}>`;
    const close = `</${name}>`;
    if (Array.isArray(value)) return open + value.map((v) => field("value", v, depth + 1)).join("") + nl(depth) + close;
    if (value !== null && typeof value === "object") {
      const inner = Object.entries(value).map(([k, v]) => field(k, v, depth + 1));
      return open + inner.join("") + nl(depth) + close;
    }
    return open + (value === null ? "" : escapeXmlText(String(value), opts.encoding)) + close;
  };

  const head = () => `<?xml version="1.0" encoding="${declaredEncoding}"?>\n<${root}>`;
  return {
    contentType: "application/xml",
    item(fields) {
      const body = selectFields(fields, opts).map(([k, v]) => field(k, v, 2));
      const text = `${nl(1) || "\n"}<${itemName}>${body.join("")}${nl(1)}</${itemName}>`;
      const prefix = started ? "" : head();
      started = true;
      return prefix + text;
    },
    end: () => (started ? "" : head()) + `\n</${root}>\n`,
  };
}
