// The node tests' platform, as `npm test` gives it to *.node.test.ts files:
// the project image is imported, the real Job controller runs a Job's pod to
// completion, and that pod — restricted, read-only root — reaches S3 at the
// exported endpoint, a server on the node host and one on every site host.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import { after, before, test } from "node:test";
import { binaryPath } from "../platform/binaries.ts";
import { node, platform, siteHosts } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually, kubectl } from "../platform/fixtures.ts";

let ns: Disposable;
const servers: Server[] = [];

before(async () => {
  ns = await createNamespace("node-platform");
  await kubectl(["label", "namespace", ns.name, "pod-security.kubernetes.io/enforce=restricted"]);
});
after(async () => {
  for (const server of servers) server.close();
  await ns?.cleanup();
});

/** An HTTP server on `host` that answers with its own address. */
async function serveOn(host: string): Promise<string> {
  const server = createServer((req, res) => res.end(req.socket.localAddress));
  servers.push(server);
  await new Promise<void>((done) => server.listen(0, host, done));
  const address = server.address();
  return `http://${host}:${typeof address === "object" && address ? address.port : 0}/`;
}

test("the node variables are set and the project image is in the node's containerd", () => {
  const n = node();
  assert.equal(n.siteHosts.length, 8);
  assert.equal(new URL(platform().s3.endpoint).hostname, n.host);
  const images = execFileSync(
    binaryPath("ctr"),
    ["--address", n.containerdAddress, "-n", "k8s.io", "images", "ls", "-q"],
    {
      encoding: "utf8",
    },
  );
  assert.ok(images.split("\n").includes(n.image), `${n.image} is not among the node's images:\n${images}`);
});

test("a Job of the project image runs to completion in a real pod and reaches S3, the node host and every site host", async () => {
  const { image, host } = node();
  const urls = [
    `${platform().s3.endpoint}/health`,
    await serveOn(host),
    ...(await Promise.all(siteHosts().map((h) => serveOn(h)))),
  ];
  const script = `
    const out = {};
    for (const url of process.argv.slice(1)) {
      try { const r = await fetch(url, { signal: AbortSignal.timeout(10000) }); out[url] = r.status + " " + (await r.text()); }
      catch (err) { out[url] = String(err.cause ?? err); }
    }
    console.log(JSON.stringify(out));`;
  const job = {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: "reach", namespace: ns.name },
    spec: {
      backoffLimit: 0,
      template: {
        spec: {
          restartPolicy: "Never",
          containers: [
            {
              name: "reach",
              image,
              imagePullPolicy: "Never",
              command: ["node", "--input-type=module", "-e", script, ...urls],
              securityContext: {
                runAsNonRoot: true,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
                seccompProfile: { type: "RuntimeDefault" },
              },
            },
          ],
        },
      },
    },
  };
  const started = Date.now();
  await kubectl(["apply", "-f", "-"], { input: JSON.stringify(job) });
  const status = await eventually(
    "the Job to finish",
    async () => {
      const s = JSON.parse(await kubectl(["get", "job", "reach", "-n", ns.name, "-o", "jsonpath={.status}"])) as {
        succeeded?: number;
        failed?: number;
      };
      return s.succeeded || s.failed ? s : undefined;
    },
    120_000,
  );
  console.log(`Job created → finished: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const logs = await kubectl(["logs", "job/reach", "-n", ns.name]);
  console.log(logs.trim());
  assert.equal(status.succeeded, 1, logs);
  const seen = JSON.parse(logs) as Record<string, string>;
  assert.equal(seen[urls[0] ?? ""]?.split(" ")[0], "200", logs);
  for (const url of urls.slice(1)) assert.equal(seen[url], `200 ${new URL(url).hostname}`);
});
