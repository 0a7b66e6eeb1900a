// The node's parts that need no root and no running node: the pod range
// check, the choice of range, and the build hints for its binaries and images.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { shardForHost } from "../../runner/shard.ts";
import { binaryPath, cniBinDir, imageArchive, MissingBinaryError, versions } from "./binaries.ts";
import { nodeNetwork, overlaps } from "./node/bridge.ts";
import { FIRST_POD_OCTET, writeCniConfig } from "./node/cni.ts";

let emptyDir: string;
const saved = { testbin: process.env.FEEDCRAWL_TESTBIN, cidr: process.env.FEEDCRAWL_NODE_CIDR };
before(() => {
  emptyDir = mkdtempSync(join(tmpdir(), "feedcrawl-empty-testbin-"));
  process.env.FEEDCRAWL_TESTBIN = emptyDir;
});
after(() => {
  for (const [name, value] of [
    ["FEEDCRAWL_TESTBIN", saved.testbin],
    ["FEEDCRAWL_NODE_CIDR", saved.cidr],
  ] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  rmSync(emptyDir, { recursive: true, force: true });
});

test("overlaps tells whether two IPv4 ranges share an address", () => {
  assert.equal(overlaps("10.213.0.0/24", "10.213.0.77/32"), true);
  assert.equal(overlaps("10.213.0.0/24", "10.0.0.0/8"), true);
  assert.equal(overlaps("10.213.0.0/24", "10.213.1.0/24"), false);
  assert.equal(overlaps("10.213.0.0/24", "192.0.2.0/24"), false);
});

test("the pod range is 10.213.0.0/24 unless FEEDCRAWL_NODE_CIDR picks another /24", () => {
  delete process.env.FEEDCRAWL_NODE_CIDR;
  assert.deepEqual(nodeNetwork(), {
    bridge: "feedcrawl0",
    cidr: "10.213.0.0/24",
    address: "10.213.0.1",
    siteHosts: [
      "10.213.0.2",
      "10.213.0.3",
      "10.213.0.4",
      "10.213.0.5",
      "10.213.0.6",
      "10.213.0.7",
      "10.213.0.8",
      "10.213.0.9",
    ],
  });
  process.env.FEEDCRAWL_NODE_CIDR = "10.77.5.0/24";
  assert.equal(nodeNetwork().address, "10.77.5.1");
  assert.deepEqual(nodeNetwork().siteHosts.slice(0, 3), ["10.77.5.2", "10.77.5.3", "10.77.5.4"]);
  process.env.FEEDCRAWL_NODE_CIDR = "10.77.0.0/16";
  assert.throws(() => nodeNetwork(), /FEEDCRAWL_NODE_CIDR=10\.77\.0\.0\/16 is not a \/24/);
});

test("pods get addresses above the node host and the site hosts", () => {
  delete process.env.FEEDCRAWL_NODE_CIDR;
  const net = nodeNetwork();
  const dir = mkdtempSync(join(tmpdir(), "feedcrawl-cni-"));
  try {
    const conflist = JSON.parse(
      readFileSync(writeCniConfig({ confDir: dir, ipamDir: join(dir, "ipam"), net }), "utf8"),
    ) as { plugins: { ipam?: { ranges: { rangeStart: string }[][] } }[] };
    const start = conflist.plugins[0]?.ipam?.ranges[0]?.[0]?.rangeStart ?? "";
    assert.equal(start, `10.213.0.${FIRST_POD_OCTET}`);
    for (const host of [net.address, ...net.siteHosts]) {
      assert.ok(Number(host.split(".")[3]) < FIRST_POD_OCTET, `${host} is below the pod range`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("with the default range the site hosts cover every shard of a 2-, 3- or 4-pod crawl", () => {
  delete process.env.FEEDCRAWL_NODE_CIDR;
  const { siteHosts } = nodeNetwork();
  for (const count of [2, 3, 4]) {
    const shards = new Set(siteHosts.map((host) => shardForHost(host, count)));
    assert.equal(shards.size, count, `shards of ${count}: ${[...shards].join(", ")}`);
  }
});

test("versions.env pins the node's parts", () => {
  const v = versions();
  for (const key of ["CONTAINERD_VERSION", "CRICTL_VERSION", "CNI_PLUGINS_VERSION"]) {
    assert.match(v[key] ?? "", /^\d+\.\d+\.\d+$/, key);
  }
});

test("a missing node binary, CNI plugin or image fails with the `npm run testbin` hint", () => {
  const hint = (what: RegExp) => (err: unknown) => {
    assert.ok(err instanceof MissingBinaryError);
    assert.match(err.message, what);
    assert.match(err.message, /npm run testbin/);
    return true;
  };
  assert.throws(() => binaryPath("kubelet"), hint(/kubelet 1\.36\.\d+ is not built/));
  assert.throws(() => binaryPath("ctr"), hint(/ctr 2\.\d+\.\d+ is not built: .*containerd-2\.\d+\.\d+\/ctr/));
  assert.throws(() => cniBinDir(), hint(/CNI plugin bridge 1\.\d+\.\d+ is not built/));
  assert.throws(() => imageArchive("pause"), hint(/the pause image is not built: .*pause-1\.36\.\d+\/pause\.oci\.tar/));
  assert.throws(() => imageArchive("podcheck"), hint(/the podcheck image is not built: .*podcheck-[0-9a-f]{12}\//));
});
