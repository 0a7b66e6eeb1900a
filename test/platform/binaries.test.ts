// A missing test binary must fail with the command that builds it — never skip.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { binaryPath, MissingBinaryError, testbinDir, versions } from "./binaries.ts";
import { startEtcd } from "./etcd.ts";
import { startPlatform } from "./platform.ts";

let emptyDir: string;
let saved: string | undefined;
before(() => {
  saved = process.env.FEEDCRAWL_TESTBIN;
  emptyDir = mkdtempSync(join(tmpdir(), "feedcrawl-empty-testbin-"));
  process.env.FEEDCRAWL_TESTBIN = emptyDir;
});
after(() => {
  if (saved === undefined) delete process.env.FEEDCRAWL_TESTBIN;
  else process.env.FEEDCRAWL_TESTBIN = saved;
  rmSync(emptyDir, { recursive: true, force: true });
});

test("versions.env pins every component", () => {
  const v = versions();
  for (const key of ["K8S_VERSION", "ETCD_VERSION", "HELM_VERSION", "VERSITYGW_VERSION", "TOXIPROXY_VERSION"]) {
    assert.match(v[key] ?? "", /^\d+\.\d+\.\d+$/, key);
  }
});

test("a missing binary throws an error that says `npm run testbin` builds it", () => {
  assert.equal(testbinDir(), emptyDir);
  assert.throws(
    () => binaryPath("kube-apiserver"),
    (err: unknown) => {
      assert.ok(err instanceof MissingBinaryError);
      assert.match(err.message, /kube-apiserver 1\.36\.\d+ is not built/);
      assert.match(err.message, /npm run testbin/);
      assert.ok(err.message.includes(join(emptyDir, `kubernetes-${versions().K8S_VERSION}`, "kube-apiserver")));
      return true;
    },
  );
});

test("starting a server without its binary rejects with the build hint", async () => {
  const workDir = mkdtempSync(join(tmpdir(), "feedcrawl-missing-"));
  try {
    await assert.rejects(startEtcd({ workDir }), /etcd 3\.6\.\d+ is not built.*npm run testbin/s);
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
});

test("the platform refuses to start and names every missing binary", async () => {
  const workDir = mkdtempSync(join(tmpdir(), "feedcrawl-missing-"));
  try {
    await assert.rejects(
      startPlatform({ workDir }),
      /Missing test binaries: etcd, kube-apiserver, kube-controller-manager, versitygw, toxiproxy-server\..*npm run testbin/s,
    );
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
});
