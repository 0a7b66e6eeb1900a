// Issue 13, operator memory: the operator process does not load TypeBox
// (~15 MB RSS). The API server enforces the CRD schema generated from it, so
// the operator imports constants from crds/schema/names.ts and runs the
// checks beyond the schema (spec/semantics.ts), never the schema itself.
// Walks the static value imports from operator/cli.ts (type-only imports are
// erased at build time and load nothing).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";

const REPO = resolve(import.meta.dirname, "..", "..");
/** `import … from "x"`, `export … from "x"`, `import "x"`; group 1 is "type " for type-only ones. */
const IMPORT = /^\s*(?:import|export)\s+(type\s+)?(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/gm;

/** Packages reached by value imports from `entry`, each with the first file that imports it. */
function packagesFrom(entry: string): Map<string, string> {
  const packages = new Map<string, string>();
  const seen = new Set<string>();
  const walk = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const [, typeOnly, spec] of readFileSync(file, "utf8").matchAll(IMPORT)) {
      if (typeOnly || !spec) continue;
      if (spec.startsWith(".")) walk(join(dirname(file), spec));
      else if (!spec.startsWith("node:")) {
        const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
        if (!packages.has(name)) packages.set(name, relative(REPO, file));
      }
    }
  };
  walk(join(REPO, entry));
  return packages;
}

test("the operator's import graph holds no TypeBox", () => {
  const packages = packagesFrom("operator/cli.ts");
  assert.ok(packages.has("undici"), "the walk follows the operator's imports");
  assert.equal(packages.get("typebox"), undefined, "typebox is imported (first by this file)");
});

test("feedcrawl validate still loads the schema check", () => {
  assert.ok(packagesFrom("runner/cli/validate.ts").has("typebox"));
});
