// lib/cli-args.ts: bad arguments exit 2 with the usage on stderr, --help exits 0 with it on stdout.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseArgs } from "node:util";
import { parseOrUsage } from "../../lib/cli-args.ts";

function capture(run: () => unknown): { result: unknown; out: string; err: string } {
  let out = "";
  let err = "";
  const { write: o } = process.stdout;
  const { write: e } = process.stderr;
  process.stdout.write = ((s: string) => {
    out += s;
    return true;
  }) as typeof o;
  process.stderr.write = ((s: string) => {
    err += s;
    return true;
  }) as typeof e;
  try {
    return { result: run(), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

const parse = (args: string[]) => () =>
  parseArgs({ args, options: { n: { type: "string" }, help: { type: "boolean", short: "h" } } });

describe("parseOrUsage", () => {
  it("returns what was parsed", () => {
    const { result, out, err } = capture(() =>
      parseOrUsage("x", "usage: x\n", parse(["--n", "3"]), (p) => p.values.help),
    );
    assert.equal((result as ReturnType<ReturnType<typeof parse>>).values.n, "3");
    assert.equal(out + err, "");
  });

  it("exits 2 naming the bad option, usage on stderr", () => {
    const { result, out, err } = capture(() =>
      parseOrUsage("feedcrawl x", "usage: x\n", parse(["--nope"]), () => false),
    );
    assert.equal(result, 2);
    assert.equal(out, "");
    assert.match(err, /^feedcrawl x: .*--nope.*\n\nusage: x\n$/s);
  });

  it("exits 0 on --help, usage on stdout", () => {
    const { result, out, err } = capture(() => parseOrUsage("x", "usage: x\n", parse(["-h"]), (p) => p.values.help));
    assert.equal(result, 0);
    assert.equal(out, "usage: x\n");
    assert.equal(err, "");
  });
});
