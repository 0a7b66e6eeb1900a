// Scrapy's feed URI templates: `%(name)s`, `%(batch_id)05d`, … (Python printf
// with named params). Only `%(param)…` and `%%` are placeholders; any other `%`
// (e.g. `%20` in a path) is kept as written, as in current Scrapy.

export const URI_PARAMS = ["name", "job", "time", "batch_id", "batch_time", "shard", "worker"] as const;
export type UriParam = (typeof URI_PARAMS)[number];
const NUMERIC_PARAMS = new Set<string>(["batch_id", "shard"]);
const MAX_WIDTH = 32;

export interface UriParams {
  name: string;
  job: string;
  /** Run start, already formatted by `formatUriTime`. */
  time: string;
  batch_id: number;
  /** Batch start, already formatted by `formatUriTime(…, true)`. */
  batch_time: string;
  shard: number;
  /**
   * The worker's id in a crawl shared over a Redis frontier (several
   * processes or pods write their own files). Absent: the shard index.
   */
  worker?: string;
}

type Piece = string | { param: string; flags: string; width: number; conversion: string };

export interface ParsedTemplate {
  pieces: Piece[];
  params: Set<string>;
  errors: string[];
}

const PLACEHOLDER = /%(%|\(([^)]*)\)([-0 +#]*)(\d*)(?:\.(\d+))?([a-zA-Z]?))/g;

export function parseUriTemplate(template: string): ParsedTemplate {
  const pieces: Piece[] = [];
  const params = new Set<string>();
  const errors: string[] = [];
  let last = 0;
  for (const m of template.matchAll(PLACEHOLDER)) {
    const literal = template.slice(last, m.index);
    last = m.index + m[0].length;
    if (m[1] === "%") {
      pieces.push(literal + "%");
      continue;
    }
    pieces.push(literal);
    const [, , param = "", flags = "", width = "", , conversion = ""] = m;
    if (!(URI_PARAMS as readonly string[]).includes(param)) {
      errors.push(`unknown URI parameter %(${param}); known: ${URI_PARAMS.map((p) => `%(${p})`).join(", ")}`);
      continue;
    }
    if (!["s", "d", "i"].includes(conversion)) {
      errors.push(`%(${param}) needs a conversion: s, or d for a number (got ${JSON.stringify(conversion || m[0])})`);
      continue;
    }
    if (conversion !== "s" && !NUMERIC_PARAMS.has(param)) {
      errors.push(`%(${param})${conversion} formats a string as a number; use %(${param})s`);
      continue;
    }
    const w = width === "" ? 0 : Number(width);
    if (w > MAX_WIDTH) {
      errors.push(`printf width ${w} of %(${param}) is too large (at most ${MAX_WIDTH})`);
      continue;
    }
    if (m[5] !== undefined) {
      errors.push(`printf precision in ${m[0]} is not supported`);
      continue;
    }
    params.add(param);
    pieces.push({ param, flags, width: w, conversion });
  }
  pieces.push(template.slice(last));
  return { pieces, params, errors };
}

function pad(text: string, width: number, flags: string, numeric: boolean): string {
  if (text.length >= width) return text;
  if (flags.includes("-")) return text.padEnd(width, " ");
  if (numeric && flags.includes("0")) {
    const negative = text.startsWith("-");
    const digits = negative ? text.slice(1) : text;
    return (negative ? "-" : "") + digits.padStart(width - (negative ? 1 : 0), "0");
  }
  return text.padStart(width, " ");
}

/** Renders a parsed template; throws if it had errors (validation reports them first). */
export function renderUri(parsed: ParsedTemplate, values: UriParams): string {
  if (parsed.errors.length > 0) throw new Error(`Feed URI template is invalid: ${parsed.errors.join("; ")}`);
  let out = "";
  for (const piece of parsed.pieces) {
    if (typeof piece === "string") {
      out += piece;
      continue;
    }
    const value = piece.param === "worker" ? (values.worker ?? String(values.shard)) : values[piece.param as UriParam];
    const numeric = piece.conversion !== "s";
    const text = numeric ? String(Math.trunc(Number(value))) : String(value);
    out += pad(text, piece.width, piece.flags, numeric);
  }
  return out;
}

/**
 * `2026-11-25T10-00-00` (UTC, like Scrapy's `%(time)s` without the offset):
 * no `:`, safe for S3 keys, Windows and POSIX paths. With millis for `%(batch_time)s`.
 */
export function formatUriTime(date: Date, withMillis = false): string {
  const iso = date.toISOString(); // 2026-11-25T10:00:00.000Z
  return (withMillis ? iso.slice(0, 23) : iso.slice(0, 19)).replaceAll(":", "-");
}

/** True when the template names each batch, so that rolling over makes a new object. */
export function isBatchTemplate(parsed: ParsedTemplate): boolean {
  return parsed.params.has("batch_id") || parsed.params.has("batch_time");
}

/**
 * The longest leading part of the template that holds no batch placeholder, up to a `/`:
 * the folder every batch of the feed lands in (the manifest goes there).
 */
export function staticBatchPrefix(parsed: ParsedTemplate): ParsedTemplate {
  const pieces: Piece[] = [];
  for (const piece of parsed.pieces) {
    if (typeof piece !== "string" && (piece.param === "batch_id" || piece.param === "batch_time")) break;
    pieces.push(piece);
  }
  // Cut back to the last "/" so that a partial file name is not taken for a folder.
  while (pieces.length > 0) {
    const tail = pieces[pieces.length - 1];
    if (typeof tail === "string") {
      const slash = tail.lastIndexOf("/");
      if (slash >= 0) {
        pieces[pieces.length - 1] = tail.slice(0, slash + 1);
        break;
      }
    }
    pieces.pop();
  }
  return { pieces, params: parsed.params, errors: parsed.errors };
}
