// Fills the `${NAME}` placeholders of an example manifest (envsubst syntax), so
// the test applies the very file a user would. A placeholder without a value,
// or a value nobody asked for, is an error: the example and the test must agree.
import { readFileSync } from "node:fs";

export function fillPlaceholders(path: string, values: Record<string, string>): string {
  const text = readFileSync(path, "utf8");
  const used = new Set<string>();
  const missing = new Set<string>();
  const filled = text.replace(/\$\{([A-Z][A-Z0-9_]*)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) {
      missing.add(name);
      return "";
    }
    used.add(name);
    return value;
  });
  if (missing.size > 0) throw new Error(`${path}: no value for placeholder(s) ${[...missing].join(", ")}`);
  const unused = Object.keys(values).filter((name) => !used.has(name));
  if (unused.length > 0) throw new Error(`${path}: has no placeholder(s) ${unused.join(", ")}`);
  return filled;
}
