// tools/check-floors.ts: the floors check catches imports that go up or
// sideways and banned packages, and the real tree has none.
import assert from "node:assert/strict";
import { globSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, describe, it } from "node:test";
import { crossings } from "../../tools/check-floors.ts";

const root = mkdtempSync(join(tmpdir(), "floors-"));
after(() => rmSync(root, { recursive: true, force: true }));

function tree(files: Record<string, string>): string[] {
  return Object.entries(files).map(([name, text]) => {
    const file = join(root, name);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    return file;
  });
}

describe("check-floors", () => {
  it("reports runner ↔ operator imports, upward imports and banned packages, with file and line", () => {
    const files = tree({
      "runner/a.ts": 'import x from "node:fs";\nimport { y } from "../operator/b.ts";\n',
      "operator/b.ts": 'import { load } from "cheerio";\nexport { z } from "../runner/a.ts";\n',
      "lib/c.ts": 'const m = await import("../kube/d.ts");\n',
      "kube/d.ts": 'import type { T } from "../crds/e.ts";\nimport { s } from "../lib/c.ts";\n',
      "spec/f.ts": 'import { h } from "../test/helpers.ts";\n',
    });
    const found = crossings(files, root).map((c) => `${c.file}:${c.line} ${c.specifier}`);
    assert.deepEqual(found.sort(), [
      "lib/c.ts:1 ../kube/d.ts",
      "operator/b.ts:1 cheerio",
      "operator/b.ts:2 ../runner/a.ts",
      "runner/a.ts:2 ../operator/b.ts",
      "spec/f.ts:1 ../test/helpers.ts",
    ]);
  });

  it("undici: types anywhere, its index loaded nowhere, its files only by lib/undici.ts", () => {
    const files = tree({
      "lib/undici.ts": 'import api from "undici/lib/api/index.js";\nimport type * as U from "undici";\n',
      "kube/k.ts": 'import type { Dispatcher } from "undici";\nimport { request } from "../lib/undici.ts";\n',
      "net/n.ts": 'import { Agent } from "undici";\n',
      "runner/r.ts": 'import Agent from "undici/lib/dispatcher/agent.js";\n',
    });
    const found = crossings(files, root).map((c) => `${c.file}:${c.line} ${c.specifier}`);
    assert.deepEqual(found.sort(), ["net/n.ts:1 undici", "runner/r.ts:1 undici/lib/dispatcher/agent.js"]);
  });

  it("finds nothing in the project itself", () => {
    const project = resolve(import.meta.dirname, "../..");
    const files = ["crds", "lib", "net", "kube", "spec", "runner", "operator", "bin"].flatMap((d) =>
      globSync("**/*.ts", { cwd: join(project, d) }).map((f) => join(project, d, f)),
    );
    assert.ok(files.length > 50);
    assert.deepEqual(crossings(files), []);
  });
});
