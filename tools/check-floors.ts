// `npm run check` part: every import must go down the floors, never up or
// sideways. The floors (docs/design.md, "Floors"), lowest first:
//
//   crds, lib  →  net, kube  →  spec  →  runner, operator  →  bin
//
// A folder may import itself and the folders listed for it; test/, bench/,
// examples/ and tools/ sit outside the product and may import any floor.
// Packages can be banned per floor too (the operator must not load a DOM
// parser). undici is loaded only through lib/undici.ts (its index also loads
// fetch, WebSocket and the cache and mock layers): elsewhere "undici" may be
// imported for types only, and its files by lib/undici.ts alone. Exits 1
// listing every crossing, with file and line.
import { globSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");

/** Which floors each floor may import (besides itself). */
export const FLOORS: Record<string, readonly string[]> = {
  crds: [],
  lib: [],
  net: ["lib"],
  kube: ["crds", "lib"],
  spec: ["crds", "lib", "net"],
  runner: ["crds", "lib", "net", "kube", "spec"],
  operator: ["crds", "lib", "net", "kube", "spec"],
  bin: ["runner", "operator"],
};

/** Packages a floor must not import (heavy, or meant for another floor). */
export const BANNED_PACKAGES: Record<string, readonly string[]> = {
  crds: ["cheerio", "undici", "@aws-sdk/client-s3"],
  lib: ["cheerio", "@aws-sdk/client-s3", "@kubernetes/client-node"],
  net: ["cheerio", "@aws-sdk/client-s3", "@kubernetes/client-node"],
  kube: ["cheerio", "@aws-sdk/client-s3", "@kubernetes/client-node"],
  spec: ["cheerio", "undici", "@aws-sdk/client-s3", "@kubernetes/client-node"],
  // client-node costs ~53 MB RSS to import; kube/kubeconfig.ts loads the kube config (issue 13).
  operator: ["cheerio", "@kubernetes/client-node"],
  runner: ["@kubernetes/client-node"],
};

/** The one product file that loads undici's files (its .d.ts types them). */
const UNDICI_ENTRY = /^lib\/undici(-files\.d)?\.ts$/;

/** Why an import of undici is not allowed here, or undefined. */
function undiciCrossing(file: string, specifier: string, statement: string): string | undefined {
  if (UNDICI_ENTRY.test(file)) return undefined;
  if (specifier.startsWith("undici/")) return "only lib/undici.ts loads undici's files";
  if (specifier === "undici" && !/^\s*(?:import|export)\s+type\s/.test(statement))
    return "load undici through lib/undici.ts (its index also loads fetch, WebSocket and the cache and mock layers); import types only";
  return undefined;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

export interface Crossing {
  file: string;
  line: number;
  specifier: string;
  why: string;
}

function floorOf(root: string, file: string): string | undefined {
  const top = relative(root, file).split(sep)[0];
  return top !== undefined && top in FLOORS ? top : undefined;
}

/** Every import in `files` (paths under `root`) that goes up or sideways. */
export function crossings(files: readonly string[], root: string = ROOT): Crossing[] {
  const found: Crossing[] = [];
  for (const file of files) {
    const floor = floorOf(root, file);
    if (!floor) continue;
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(IMPORT)) {
      const specifier = (m[1] ?? m[2]) as string;
      const line = text.slice(0, m.index).split("\n").length + (m[0].startsWith("\n") ? 1 : 0);
      const at = { file: relative(root, file), line, specifier };
      if (specifier.startsWith(".")) {
        const target = floorOf(root, resolve(dirname(file), specifier));
        if (target === undefined) found.push({ ...at, why: `${floor}/ may not import outside the product's floors` });
        else if (target !== floor && !FLOORS[floor]?.includes(target))
          found.push({
            ...at,
            why: `${floor}/ may not import ${target}/ (allowed: ${FLOORS[floor]?.join(", ") || "none"})`,
          });
      } else {
        const pkg = specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0];
        if (pkg && BANNED_PACKAGES[floor]?.includes(pkg)) found.push({ ...at, why: `${floor}/ may not import ${pkg}` });
        else if (pkg === "undici") {
          const why = undiciCrossing(at.file, specifier, m[0].trim());
          if (why) found.push({ ...at, why });
        }
      }
    }
  }
  return found;
}

if (import.meta.main) {
  const files = Object.keys(FLOORS).flatMap((floor) =>
    globSync("**/*.ts", { cwd: join(ROOT, floor) }).map((f) => join(ROOT, floor, f)),
  );
  const found = crossings(files);
  for (const c of found) console.error(`${c.file}:${c.line}: import "${c.specifier}": ${c.why}`);
  if (found.length) {
    console.error(`check-floors: ${found.length} import(s) cross a floor the wrong way (docs/design.md, "Floors")`);
    process.exit(1);
  }
  console.log(`check-floors: ${files.length} files, every import goes down the floors`);
}
