// Turns an item's fields into plain JSON-able values, refusing what would make a
// corrupt or unbounded file: cycles, very deep nesting, functions, symbols, class instances.
import { type Charset, type EncoderOptions, UnserializableItemError } from "./encoder.ts";

export const MAX_DEPTH = 32;

function plain(value: unknown, depth: number, stack: Set<object>): unknown {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return Number.isFinite(value) ? value : null;
    case "bigint":
      return value.toString();
    case "undefined":
      return null;
    case "object": {
      if (value === null) return null;
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw new UnserializableItemError("an invalid Date");
        return value.toISOString();
      }
      if (depth >= MAX_DEPTH) throw new UnserializableItemError(`nesting deeper than ${MAX_DEPTH} levels`);
      if (stack.has(value)) throw new UnserializableItemError("a cyclic value");
      stack.add(value);
      try {
        if (Array.isArray(value)) return value.map((v) => plain(v, depth + 1, stack));
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          throw new UnserializableItemError(`a ${proto?.constructor?.name ?? "non-plain"} object`);
        }
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = plain(v, depth + 1, stack);
        return out;
      } finally {
        stack.delete(value);
      }
    }
    default:
      throw new UnserializableItemError(`a ${typeof value} value`);
  }
}

/**
 * The item's fields to write, in order: the `fields` option selects and orders them
 * (missing ones omitted, or null with `exportEmptyFields`); without it, the item's own order.
 */
export function selectFields(
  fields: Readonly<Record<string, unknown>>,
  opts: Pick<EncoderOptions, "fields" | "exportEmptyFields">,
): [string, unknown][] {
  const stack = new Set<object>();
  const out: [string, unknown][] = [];
  if (opts.fields && opts.fields.length > 0) {
    for (const name of opts.fields) {
      if (Object.hasOwn(fields, name) && fields[name] !== undefined) out.push([name, plain(fields[name], 1, stack)]);
      else if (opts.exportEmptyFields) out.push([name, null]);
    }
    return out;
  }
  for (const [name, value] of Object.entries(fields)) if (value !== undefined) out.push([name, plain(value, 1, stack)]);
  return out;
}

function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  // Python's sort_keys compares code points; JS's default sort compares UTF-16 units: the same for the BMP.
  for (const k of Object.keys(value).sort()) out[k] = sortedKeys((value as Record<string, unknown>)[k]);
  return out;
}

/** How JSON text is written: indentation, sorted keys, and which characters must become \uXXXX escapes. */
export interface JsonStyle {
  indent?: number | undefined;
  sortKeys?: boolean | undefined;
  /** Escape every non-ASCII character (Python's ensure_ascii). */
  ensureAscii?: boolean | undefined;
}

const escapeUnit = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** JSON text for a plain value; characters the output encoding lacks (or all non-ASCII) become \uXXXX escapes. */
export function jsonText(value: unknown, style: JsonStyle, cs: Charset): string {
  const text = JSON.stringify(
    style.sortKeys ? sortedKeys(value) : value,
    null,
    style.indent && style.indent > 0 ? style.indent : undefined,
  );
  if (style.ensureAscii) return text.replace(/[\u0080-\uffff]/g, escapeUnit);
  if (cs.unicode) return text;
  // Whole code points are tested; a character outside the BMP is escaped as its surrogate pair.
  return text.replace(/[^\u0000-\u007f]/gu, (c) =>
    cs.fits(c.codePointAt(0) ?? 0) ? c : [...c.split("")].map(escapeUnit).join(""),
  );
}
