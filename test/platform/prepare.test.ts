// `npm test` builds what is missing, one part at a time with its expected
// time; with FEEDCRAWL_NO_BUILD=1, or when a build fails, it fails with the
// build hint — it never skips. No real build here: an empty testbin folder
// and stand-in build scripts.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { MissingBinaryError, versions } from "./binaries.ts";
import { EXPECTED_SECONDS, minutes, missingParts, NODE_PARTS, PLATFORM_PARTS, prepare } from "./prepare.ts";

let dir: string;
let saved: string | undefined;
before(() => {
  saved = process.env.FEEDCRAWL_TESTBIN;
  dir = mkdtempSync(join(tmpdir(), "feedcrawl-prepare-"));
  process.env.FEEDCRAWL_TESTBIN = join(dir, "testbin");
});
after(() => {
  if (saved === undefined) delete process.env.FEEDCRAWL_TESTBIN;
  else process.env.FEEDCRAWL_TESTBIN = saved;
  rmSync(dir, { recursive: true, force: true });
});

function script(name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, `#!/usr/bin/env bash\nset -eu\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

test("an empty cache misses every part; the expected times add up to the ~33 min cold build", () => {
  assert.deepEqual(missingParts(NODE_PARTS), NODE_PARTS);
  assert.deepEqual(missingParts(PLATFORM_PARTS), PLATFORM_PARTS);
  const total = NODE_PARTS.reduce((sum, part) => sum + EXPECTED_SECONDS[part], 0);
  assert.equal(minutes(total), "~33 min");
});

test("with building off, a missing part fails with the `npm run testbin` hint", async () => {
  await assert.rejects(prepare({ parts: ["etcd", "toxiproxy"], build: false, log: () => {} }), (err: unknown) => {
    assert.ok(err instanceof MissingBinaryError);
    assert.match(err.message, /Missing test binaries \(etcd, toxiproxy\).*FEEDCRAWL_NO_BUILD.*npm run testbin/s);
    return true;
  });
});

test("missing parts are built one at a time, each announced with its expected time", async () => {
  const v = versions();
  // A stand-in for build-testbin.sh that makes the files the checks look for.
  const build = script(
    "build-ok.sh",
    `case "$1" in
       etcd) mkdir -p "$FEEDCRAWL_TESTBIN/etcd-${v.ETCD_VERSION}"; : > "$FEEDCRAWL_TESTBIN/etcd-${v.ETCD_VERSION}/etcd"; chmod +x "$FEEDCRAWL_TESTBIN/etcd-${v.ETCD_VERSION}/etcd";;
       toxiproxy) d="$FEEDCRAWL_TESTBIN/toxiproxy-${v.TOXIPROXY_VERSION}"; mkdir -p "$d"; : > "$d/toxiproxy-server"; chmod +x "$d/toxiproxy-server";;
     esac`,
  );
  const lines: string[] = [];
  await prepare({ parts: ["etcd", "toxiproxy"], script: build, build: true, log: (l) => lines.push(l) });
  assert.match(lines[0] ?? "", /Building the missing test binaries .*: etcd, toxiproxy — ~2 min in all/);
  assert.match(lines[1] ?? "", /^\[build 1\/2\] etcd \(~2 min cold on 2 cores\)$/);
  assert.ok(
    lines.some((l) => /^\[build 2\/2\] toxiproxy \(~15 s cold on 2 cores\)$/.test(l)),
    lines.join("\n"),
  );
  assert.deepEqual(missingParts(["etcd", "toxiproxy"]), []);
  // Present now: nothing is built again.
  lines.length = 0;
  await prepare({
    parts: ["etcd", "toxiproxy"],
    script: script("build-never.sh", "exit 9"),
    log: (l) => lines.push(l),
  });
  assert.deepEqual(lines, []);
});

test("a build that fails, or builds nothing, fails the run instead of skipping", async () => {
  await assert.rejects(
    prepare({ parts: ["helm"], script: script("build-fail.sh", "exit 3"), build: true, log: () => {} }),
    /building helm failed .*exited 3/,
  );
  mkdirSync(join(dir, "testbin"), { recursive: true });
  await assert.rejects(
    prepare({ parts: ["crictl"], script: script("build-nothing.sh", "exit 0"), build: true, log: () => {} }),
    (err: unknown) => err instanceof MissingBinaryError && /crictl .* is not built.*npm run testbin/s.test(err.message),
  );
});
