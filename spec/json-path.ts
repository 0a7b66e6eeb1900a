// A small JSONPath (RFC 9535) subset for `json` fields and `itemPath`, and the
// `jsonld` field paths ("Product.offers.price"). Parsed here so validation and
// extraction read a path the same way; pure, no dependency. The subset: `$`,
// `.name`, `['name']` / `["name"]`, `[n]` (negative from the end), `[*]`, `.*`,
// `..name`, `..*` — no filters or slices, so nothing a path does can be costly
// beyond one walk of the document (results are capped). Every path of the subset
// means the same in RFC 9535, so a full implementation could replace this one.

export type JsonPathStep =
  | { kind: "key"; key: string }
  | { kind: "index"; index: number }
  | { kind: "wildcard" }
  | { kind: "descendant"; key: string | undefined /* undefined: every descendant */ };

export type ParsedJsonPath = { steps: JsonPathStep[] } | { error: string };

const NAME = /^[A-Za-z_$@\u0080-\uffff][\w$@\-\u0080-\uffff]*/;
const MAX_STEPS = 32;
/** At most this many values come out of one evaluation (a `..*` on a large document). */
const MAX_RESULTS = 10_000;

function bracket(rest: string): { step: JsonPathStep; length: number } | string {
  const quoted = /^\[\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\]/.exec(rest);
  if (quoted) {
    const raw = quoted[1] ?? quoted[2] ?? "";
    return { step: { kind: "key", key: raw.replace(/\\(.)/g, "$1") }, length: quoted[0].length };
  }
  const index = /^\[\s*(-?\d{1,9})\s*\]/.exec(rest);
  if (index) return { step: { kind: "index", index: Number(index[1]) }, length: index[0].length };
  if (/^\[\s*\*\s*\]/.test(rest))
    return { step: { kind: "wildcard" }, length: (/^\[\s*\*\s*\]/.exec(rest) as RegExpExecArray)[0].length };
  if (/^\[\s*\?/.test(rest)) return "filter expressions ([?…]) are not supported";
  if (/^\[\s*-?\d*\s*:/.test(rest)) return "slices ([a:b]) are not supported";
  return `expected ['name'], [n] or [*] at "${rest.slice(0, 20)}"`;
}

/** Parses `$…`; an error names what is wrong. */
export function parseJsonPath(path: string): ParsedJsonPath {
  if (!path.startsWith("$")) return { error: 'a JSONPath starts with "$" (e.g. $.items[*].name)' };
  const steps: JsonPathStep[] = [];
  let rest = path.slice(1);
  while (rest.length > 0) {
    if (steps.length >= MAX_STEPS) return { error: `more than ${MAX_STEPS} steps` };
    if (rest.startsWith("..")) {
      rest = rest.slice(2);
      if (rest.startsWith("*")) {
        steps.push({ kind: "descendant", key: undefined });
        rest = rest.slice(1);
        continue;
      }
      const m = NAME.exec(rest);
      if (!m) return { error: `expected a name or * after ".." at "${rest.slice(0, 20)}"` };
      steps.push({ kind: "descendant", key: m[0] });
      rest = rest.slice(m[0].length);
    } else if (rest.startsWith(".")) {
      rest = rest.slice(1);
      if (rest.startsWith("*")) {
        steps.push({ kind: "wildcard" });
        rest = rest.slice(1);
        continue;
      }
      const m = NAME.exec(rest);
      if (!m) return { error: `expected a name after "." at "${rest.slice(0, 20)}"` };
      steps.push({ kind: "key", key: m[0] });
      rest = rest.slice(m[0].length);
    } else if (rest.startsWith("[")) {
      const b = bracket(rest);
      if (typeof b === "string") return { error: b };
      steps.push(b.step);
      rest = rest.slice(b.length);
    } else {
      return { error: `unexpected "${rest.slice(0, 20)}"` };
    }
  }
  return { steps };
}

function children(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  if (value !== null && typeof value === "object") return Object.values(value);
  return [];
}

function step(value: unknown, s: JsonPathStep, flatten: boolean, out: unknown[]): void {
  if (out.length >= MAX_RESULTS) return;
  if (flatten && Array.isArray(value) && s.kind === "key") {
    for (const v of value) step(v, s, flatten, out);
    return;
  }
  switch (s.kind) {
    case "key":
      if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.hasOwn(value, s.key))
        out.push((value as Record<string, unknown>)[s.key]);
      return;
    case "index":
      if (Array.isArray(value)) {
        const v = value.at(s.index);
        if (v !== undefined) out.push(v);
      }
      return;
    case "wildcard":
      for (const v of children(value)) if (out.length < MAX_RESULTS) out.push(v);
      return;
    case "descendant": {
      // Pre-order, iteratively (a hostile document may nest deeply).
      const stack: unknown[] = [value];
      while (stack.length > 0 && out.length < MAX_RESULTS) {
        const node = stack.pop();
        if (s.key === undefined) {
          if (node !== value) out.push(node);
        } else step(node, { kind: "key", key: s.key }, false, out);
        const kids = children(node);
        for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]);
      }
    }
  }
}

/**
 * Every value the path selects, in document order. `flatten` (JSON-LD): a name
 * step on an array applies to each element, since schema.org values may be one
 * object or a list of them.
 */
export function evaluateJsonPath(steps: readonly JsonPathStep[], root: unknown, flatten = false): unknown[] {
  let current: unknown[] = [root];
  for (const s of steps) {
    const next: unknown[] = [];
    for (const v of current) step(v, s, flatten, next);
    current = next;
  }
  if (flatten) current = current.flatMap((v) => (Array.isArray(v) ? v : [v]));
  return current.slice(0, MAX_RESULTS);
}

/** `Product.offers.price` -> the @type and the path below it; `*` matches any type. */
export function parseJsonLdPath(path: string): { type: string; steps: JsonPathStep[] } | { error: string } {
  const m = /^([A-Za-z*][\w:/.#-]*?)(?=$|[.[])/.exec(path);
  if (!m?.[1]) return { error: 'expected "<schema.org type>.<property>…", e.g. Product.offers.price' };
  const type = m[1];
  const rest = path.slice(type.length);
  const parsed = parseJsonPath(`$${rest}`);
  if ("error" in parsed) return parsed;
  if (parsed.steps.some((s) => s.kind === "descendant")) return { error: ".. is not supported in jsonld paths" };
  return { type, steps: parsed.steps };
}
