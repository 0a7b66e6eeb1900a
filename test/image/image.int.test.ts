// The image, built here from the project's Dockerfile (npm run image's steps,
// warm in seconds, ~4 min cold), runs as the runner and operator pods run it:
// uid 65532, read-only root filesystem, /tmp the only writable place. No
// cluster: runc starts it directly.
// feedcrawl-test-needs: image
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { before, test } from "node:test";
import { IMAGE } from "../platform/image/build.ts";
import { ensureImage, type ImageReport } from "../platform/image/image.ts";
import { type SmokeReport, smokeTest } from "../platform/image/smoke.ts";

let built: ImageReport;
let smoke: SmokeReport;

before(
  async () => {
    built = await ensureImage({ containerdAddress: "", log: (line) => console.log(`# ${line}`) });
    smoke = await smokeTest();
  },
  { timeout: 10 * 60_000 },
);

const run = (argv: string[]) => {
  const found = smoke.runs.find((r) => r.args.join(" ") === argv.join(" "));
  assert.ok(found, `no run of ${argv.join(" ")}`);
  return { ...found, output: found.stdout + found.stderr };
};

test("the image's default command prints the usage, like `docker run IMAGE`", () => {
  const r = run([]);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /usage: feedcrawl <command>/);
});

test("feedcrawl run and feedcrawl operator load under a read-only root as uid 65532", () => {
  for (const argv of [
    ["feedcrawl", "run", "--help"],
    ["feedcrawl", "operator", "--help"],
  ]) {
    const r = run(argv);
    assert.equal(r.code, 0, `${argv.join(" ")}: ${r.output}`);
  }
  // No pod env: the runner stops at its configuration with exit 2 (podFailurePolicy: fail the Job at once).
  const r = run(["feedcrawl", "run"]);
  assert.equal(r.code, 2, r.output);
  assert.match(r.output, /Runner configuration is invalid/);
});

test("the image runs the compiled JavaScript: feedcrawl is dist's bin, no TypeScript source ships", () => {
  const r = run([
    "sh",
    "-c",
    "readlink /usr/local/bin/feedcrawl; find /app -name '*.ts' -not -path '*/node_modules/*'",
  ]);
  assert.equal(r.code, 0, r.output);
  assert.equal(r.output, "/app/bin/feedcrawl.js\n");
});

test("the container runs as 65532 with /tmp writable and the root filesystem read-only", () => {
  const r = run(["sh", "-c", "id -u; touch /tmp/probe && echo tmp-writable; touch /app/probe || echo root-read-only"]);
  assert.match(r.output, /^65532\ntmp-writable\n.*root-read-only/s);
});

test("starting feedcrawl writes nothing outside /tmp", () => {
  assert.deepEqual(smoke.writesOutsideTmp, []);
  assert.deepEqual(smoke.problems, []);
});

test("the OCI archive names the image for containerd's import", () => {
  const index = JSON.parse(execFileSync("tar", ["-xOf", built.archive, "index.json"], { encoding: "utf8" })) as {
    manifests: { annotations?: Record<string, string> }[];
  };
  assert.equal(index.manifests.length, 1);
  assert.equal(index.manifests[0]?.annotations?.["org.opencontainers.image.ref.name"], IMAGE);
});
