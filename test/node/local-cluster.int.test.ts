// `npm run local-cluster -- up` brings up a real node and `down` leaves the
// machine as it found it. Starts its own cluster (the node is one per
// machine), so it runs while no other test node is up: in the API-only tier.
// Pods run images imported with ctr (no registry): the pause image and
// podcheck, a static program that reports from inside its pod.
// feedcrawl-test-needs: testbin
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { binaryPath, imageArchive } from "../platform/binaries.ts";
import { KUBERNETES_SERVICE_IP } from "../platform/certs.ts";
import { type HostSnapshot, snapshotHost, WATCHED_SYSCTLS } from "./host-snapshot.ts";

const root = resolve(import.meta.dirname, "..", "..");
const clusterDir = mkdtempSync(join(tmpdir(), "feedcrawl-node-test-"));
let env: Record<string, string> = {};
let beforeUp: HostSnapshot;
let upSeconds = 0;
let downSeconds = 0;
const namespace = "node-test";

function runFile(command: string, args: string[], extraEnv: Record<string, string> = {}, input = ""): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      command,
      args,
      { cwd: root, env: { ...process.env, ...extraEnv }, maxBuffer: 16 * 1024 * 1024, timeout: 150_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${command} ${args.join(" ")} failed: ${stderr.trim() || err.message}`));
        else resolvePromise(stdout);
      },
    );
    child.stdin?.end(input);
  });
}

const localCluster = (command: string) =>
  runFile(process.execPath, ["test/platform/local-cluster.ts", command], { FEEDCRAWL_LOCAL_CLUSTER_DIR: clusterDir });
const kubectl = (args: string[], input?: string) =>
  runFile(
    binaryPath("kubectl"),
    [`--kubeconfig=${env.KUBECONFIG}`, `--cache-dir=${join(clusterDir, ".kube-cache")}`, ...args],
    {},
    input,
  );

/** The `export NAME='value'` lines `up` prints. */
function parseExports(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const match of text.matchAll(/^export ([A-Z0-9_]+)='((?:[^']|'\\'')*)'$/gm)) {
    vars[match[1] as string] = (match[2] as string).replaceAll("'\\''", "'");
  }
  return vars;
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`${what}: not after ${timeoutMs / 1000} s${last ? ` (${(last as Error).message})` : ""}`);
}

/** Restricted Pod Security: what every pod of the project must pass. */
const restricted = {
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
};

before(async () => {
  beforeUp = snapshotHost();
  const started = Date.now();
  const out = await localCluster("up");
  upSeconds = (Date.now() - started) / 1000;
  env = parseExports(out);
});

after(async () => {
  // Also when a test failed: the machine must be left clean either way.
  if (env.KUBECONFIG) await localCluster("down").catch(() => {});
  rmSync(clusterDir, { recursive: true, force: true });
});

test("up prints the node's exports and the machine's tunables stay as they were while the node runs", () => {
  assert.match(env.FEEDCRAWL_NODE_HOST ?? "", /^\d+\.\d+\.\d+\.1$/);
  const base = (env.FEEDCRAWL_NODE_HOST ?? "").replace(/\.1$/, "");
  assert.equal(env.FEEDCRAWL_NODE_SITE_HOSTS, [2, 3, 4, 5, 6, 7, 8, 9].map((i) => `${base}.${i}`).join(","));
  assert.equal(env.FEEDCRAWL_CONTAINERD_ADDRESS, "/run/feedcrawl-node/containerd.sock");
  assert.equal(new URL(env.FEEDCRAWL_TEST_APISERVER ?? "").hostname, env.FEEDCRAWL_NODE_HOST);
  const now = snapshotHost();
  for (const key of WATCHED_SYSCTLS) assert.equal(now.sysctls[key], beforeUp.sysctls[key], `/proc/sys/${key}`);
  console.log(`local-cluster up: ${upSeconds.toFixed(1)} s to a Ready node`);
});

test("kubectl get nodes shows the node Ready, untainted, at the bridge address", async () => {
  console.log(await kubectl(["get", "nodes", "-o", "wide"]));
  const node = JSON.parse(await kubectl(["get", "node", env.FEEDCRAWL_NODE_NAME ?? "", "-o", "json"])) as {
    spec: { taints?: unknown[] };
    status: { conditions: { type: string; status: string }[]; addresses: { type: string; address: string }[] };
  };
  assert.equal(node.status.conditions.find((c) => c.type === "Ready")?.status, "True");
  assert.deepEqual(node.spec.taints ?? [], []);
  assert.equal(node.status.addresses.find((a) => a.type === "InternalIP")?.address, env.FEEDCRAWL_NODE_HOST);
});

test("a restricted pod of the imported pause image runs, and its logs come through the apiserver", async () => {
  await kubectl(["create", "namespace", namespace]);
  await kubectl(["label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"]);
  const image = imageArchive("pause").name;
  const pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "pause", namespace },
    spec: {
      containers: [{ name: "pause", image, imagePullPolicy: "Never", securityContext: restricted }],
      securityContext: { runAsUser: 65535 },
      terminationGracePeriodSeconds: 1,
    },
  };
  const created = Date.now();
  await kubectl(["apply", "-f", "-"], JSON.stringify(pod));
  await until("pod pause Running", 60_000, async () => {
    const phase = await kubectl(["get", "pod", "pause", "-n", namespace, "-o", "jsonpath={.status.phase}"]);
    return phase === "Running" ? phase : undefined;
  });
  console.log(`pod create → Running: ${((Date.now() - created) / 1000).toFixed(2)} s`);
  // pause says it is not PID 1 only when it is not; its log is empty but must be readable.
  assert.equal((await kubectl(["logs", "pause", "-n", namespace])).trim(), "");
});

test("a pod reaches the apiserver through the kubernetes Service with its token, servers on the node host and every site host, S3 and toxiproxy, but has no default route", async () => {
  const podcheck = imageArchive("podcheck");
  await runFile(binaryPath("ctr"), [
    "--address",
    env.FEEDCRAWL_CONTAINERD_ADDRESS ?? "",
    "-n",
    "k8s.io",
    "images",
    "import",
    podcheck.archive,
  ]);
  const hosts = [env.FEEDCRAWL_NODE_HOST ?? "", ...(env.FEEDCRAWL_NODE_SITE_HOSTS ?? "").split(",")];
  const seen: string[] = [];
  const servers = hosts.map((host) =>
    createServer((req, res) => {
      seen.push(`${req.socket.localAddress} from ${req.socket.remoteAddress}`);
      res.end(host);
    }),
  );
  const urls = await Promise.all(
    servers.map(
      (server, i) =>
        new Promise<string>((done) =>
          server.listen(0, hosts[i], () => {
            const address = server.address();
            done(`http://${hosts[i]}:${typeof address === "object" && address ? address.port : 0}/`);
          }),
        ),
    ),
  );
  try {
    // From the host too: every address is local.
    for (const url of urls) assert.equal(await (await fetch(url)).text(), new URL(url).hostname);
    seen.length = 0;
    // And the platform's servers, at the endpoints `up` exported.
    const podUrls = [...urls, `${env.FEEDCRAWL_TEST_S3_ENDPOINT}/health`, `${env.FEEDCRAWL_TEST_TOXIPROXY}/version`];
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "podcheck", namespace },
      spec: {
        restartPolicy: "Never",
        containers: [
          {
            name: "podcheck",
            image: podcheck.name,
            imagePullPolicy: "Never",
            env: [{ name: "PODCHECK_URL", value: podUrls.join(" ") }],
            securityContext: restricted,
          },
        ],
        securityContext: { runAsUser: 65534 },
      },
    };
    const created = Date.now();
    await kubectl(["apply", "-f", "-"], JSON.stringify(pod));
    const phase = await until("pod podcheck finished", 60_000, async () => {
      const p = await kubectl(["get", "pod", "podcheck", "-n", namespace, "-o", "jsonpath={.status.phase}"]);
      return p === "Succeeded" || p === "Failed" ? p : undefined;
    });
    console.log(`pod create → ${phase}: ${((Date.now() - created) / 1000).toFixed(2)} s`);
    const logs = await kubectl(["logs", "podcheck", "-n", namespace]);
    console.log(`podcheck: ${logs.trim()}`);
    const report = JSON.parse(logs) as {
      routes: string[];
      defaultRoute: boolean;
      user: string;
      hostStatus?: Record<string, number>;
    };
    assert.equal(phase, "Succeeded", logs);
    assert.equal(report.defaultRoute, false);
    assert.equal(report.user, `system:serviceaccount:${namespace}:default`);
    assert.deepEqual(report.hostStatus, Object.fromEntries(podUrls.map((url) => [url, 200])));
    assert.ok(
      report.routes.some((r) =>
        r.startsWith(`${KUBERNETES_SERVICE_IP.replace(/\.1$/, ".0")}/24 via ${env.FEEDCRAWL_NODE_HOST}`),
      ),
      report.routes.join("; "),
    );
    const podIp = (await kubectl(["get", "pod", "podcheck", "-n", namespace, "-o", "jsonpath={.status.podIP}"])).trim();
    // The pod's address is above the host addresses (the CNI range starts at .10).
    assert.ok(Number(podIp.split(".")[3]) >= 10, podIp);
    assert.deepEqual(seen.sort(), hosts.map((host) => `${host} from ${podIp}`).sort());
    // The root-CA publisher made the ConfigMap the projected token volume reads.
    assert.match(
      await kubectl(["get", "configmap", "kube-root-ca.crt", "-n", namespace, "-o", "name"]),
      /kube-root-ca\.crt/,
    );
  } finally {
    for (const server of servers) server.close();
  }
});

test("S3 and toxiproxy listen on the node host (the pod test above reaches them from a pod)", async () => {
  for (const name of ["FEEDCRAWL_TEST_S3_ENDPOINT", "FEEDCRAWL_TEST_TOXIPROXY", "AWS_ENDPOINT_URL_S3"]) {
    assert.equal(new URL(env[name] ?? "").hostname, env.FEEDCRAWL_NODE_HOST, name);
  }
  assert.equal((await fetch(`${env.FEEDCRAWL_TEST_S3_ENDPOINT}/health`)).status, 200);
  assert.equal((await fetch(`${env.FEEDCRAWL_TEST_TOXIPROXY}/version`)).status, 200);
});

test("down leaves no rule, mount, link, cgroup, tunable or runtime folder behind", async () => {
  const started = Date.now();
  await localCluster("down");
  downSeconds = (Date.now() - started) / 1000;
  env = {};
  console.log(`local-cluster down: ${downSeconds.toFixed(1)} s`);
  const afterDown = snapshotHost();
  assert.equal(afterDown.iptables, beforeUp.iptables, "iptables-save");
  assert.equal(afterDown.ip6tables, beforeUp.ip6tables, "ip6tables-save");
  assert.equal(afterDown.nft, beforeUp.nft, "nft list ruleset");
  assert.deepEqual(afterDown.mounts, beforeUp.mounts, "/proc/self/mountinfo");
  assert.deepEqual(afterDown.links, beforeUp.links, "ip link");
  assert.deepEqual(afterDown.sysctls, beforeUp.sysctls, "sysctls");
  assert.deepEqual(afterDown.cgroups, beforeUp.cgroups, "kubepods cgroups");
  assert.deepEqual(afterDown.paths, beforeUp.paths, "runtime folders");
});
