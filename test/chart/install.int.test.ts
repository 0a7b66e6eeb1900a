// `helm install` / `upgrade` / `uninstall` of charts/feedcrawl against a real
// kube-apiserver, without `--wait` (there is no kubelet: the operator pod never
// runs). It uses a private control plane, so installing and keeping CRDs
// cannot collide with other tests that apply the CRDs with kubectl.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { kubectl, type OwnControlPlane, startOwnControlPlane } from "../platform/fixtures.ts";
import { chartDir, helm } from "./helm.ts";
import { perJobRunnerRules } from "./rbac-rules.ts";

const RELEASE = "fc";
const NS = "feedcrawl-system";
const SA = `system:serviceaccount:${NS}:${RELEASE}-feedcrawl`;
const CRDS = ["crawljobs.feedcrawl.io", "crawlfeeds.feedcrawl.io", "crawlschedules.feedcrawl.io"];

describe("chart: helm install and uninstall on a real apiserver", () => {
  let cp: OwnControlPlane;
  let kubeconfig: string;
  const k = (args: string[], input?: string) => kubectl(args, { kubeconfig, ...(input ? { input } : {}) });
  const h = (args: string[]) => helm([...args, "--kubeconfig", kubeconfig]);
  /** kubectl that must fail: resolves to its error message. */
  const kFails = async (args: string[], input?: string) => {
    try {
      await k(args, input);
    } catch (err) {
      return (err as Error).message;
    }
    assert.fail(`kubectl ${args.join(" ")} succeeded`);
  };
  let installNotes = "";

  before(async () => {
    cp = await startOwnControlPlane("chart");
    kubeconfig = cp.apiserver.kubeconfig;
  });
  after(async () => {
    await cp?.stop();
  });

  it("installs CRDs, RBAC and the operator Deployment (no --wait: no kubelet here)", async () => {
    const result = await h(["install", RELEASE, chartDir, "--namespace", NS, "--create-namespace"]);
    assert.equal(result.code, 0, result.stderr);
    installNotes = result.stdout;
    for (const crd of CRDS) {
      await k(["wait", "--for=condition=Established", `crd/${crd}`, "--timeout=30s"]);
    }
    const crd = JSON.parse(await k(["get", "crd", "crawljobs.feedcrawl.io", "-o", "json"]));
    assert.equal(crd.metadata.annotations["helm.sh/resource-policy"], "keep");
    assert.deepEqual(crd.spec.names.shortNames, ["crawl"]);
    const deployment = JSON.parse(await k(["-n", NS, "get", "deployment", `${RELEASE}-feedcrawl`, "-o", "json"]));
    assert.equal(deployment.spec.template.spec.serviceAccountName, `${RELEASE}-feedcrawl`);
    assert.equal(deployment.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem, true);
    await k(["get", "clusterrole", `${RELEASE}-feedcrawl`]);
    await k(["get", "clusterrolebinding", `${RELEASE}-feedcrawl`]);
    await k(["-n", NS, "get", "serviceaccount", `${RELEASE}-feedcrawl`]);
    await k(["-n", NS, "get", "service", `${RELEASE}-feedcrawl-metrics`]);
  });

  it("prints NOTES whose first CrawlJob the apiserver accepts and that say how to watch it", async () => {
    assert.match(installNotes, /kubectl -n crawl get crawl -w/);
    assert.match(installNotes, /kubectl -n crawl wait --for=condition=Succeeded crawl\/books/);
    const manifest = /<<'YAML'\n([\s\S]*?)\n\s*YAML\n/.exec(installNotes)?.[1];
    assert.ok(manifest, "NOTES hold a CrawlJob manifest");
    const yaml = manifest
      .split("\n")
      .map((line) => line.replace(/^ {3}/, ""))
      .join("\n");
    await k(["create", "namespace", "crawl"]);
    const out = await k(["apply", "--dry-run=server", "-f", "-"], yaml);
    assert.match(out, /crawljob\.feedcrawl\.io\/books created \(server dry run\)/);
  });

  it("gives the operator's ServiceAccount its rules and nothing more", async () => {
    // `kubectl auth can-i` exits 0 for yes and 1 for no.
    const can = (...args: string[]) =>
      k(["auth", "can-i", "--quiet", "--as", SA, ...args]).then(
        () => "yes",
        () => "no",
      );
    assert.equal(await can("watch", "crawljobs.feedcrawl.io", "--all-namespaces"), "yes");
    assert.equal(await can("patch", "crawljobs.feedcrawl.io", "--subresource=status", "-n", "crawl"), "yes");
    assert.equal(await can("create", "jobs.batch", "-n", "crawl"), "yes");
    assert.equal(await can("get", "secrets", "-n", "crawl"), "yes");
    assert.equal(await can("watch", "secrets", "-n", "crawl"), "yes");
    for (const verb of ["create", "delete", "patch", "update"]) {
      assert.equal(await can(verb, "secrets", "-n", "crawl"), "no", `${verb} secrets`);
    }
    // Pods: read-only (the runner pods' problems become CrawlJob conditions); nothing that runs or reads inside one.
    assert.equal(await can("watch", "pods", "-n", "crawl"), "yes");
    assert.equal(await can("get", "pods", "-n", "crawl"), "yes");
    for (const verb of ["create", "delete", "patch", "update", "deletecollection"]) {
      assert.equal(await can(verb, "pods", "-n", "crawl"), "no", `${verb} pods`);
    }
    assert.equal(await can("get", "pods", "--subresource=log", "-n", "crawl"), "no", "pods/log");
    assert.equal(await can("create", "pods", "--subresource=exec", "-n", "crawl"), "no", "pods/exec");
    assert.equal(await can("create", "pods", "--subresource=eviction", "-n", "crawl"), "no", "pods/eviction");
    assert.equal(await can("update", "crawljobs.feedcrawl.io", "-n", "crawl"), "no");
    assert.equal(await can("create", "leases.coordination.k8s.io", "-n", NS), "no", "no Lease without leader election");
    assert.equal(await can("update", "configmaps", "-n", "crawl"), "yes");
  });

  it("lets the operator create a runner's per-job Role and RoleBinding (it holds all it grants), and no wider one", async () => {
    const role = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "books-runner", namespace: "crawl" },
      rules: perJobRunnerRules("books"),
    };
    const binding = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "books-runner", namespace: "crawl" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "books-runner" },
      subjects: [{ kind: "ServiceAccount", name: "books-runner", namespace: "crawl" }],
    };
    await k(
      ["create", "--as", SA, "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "ServiceAccount",
        metadata: { name: "books-runner", namespace: "crawl" },
      }),
    );
    await k(["create", "--as", SA, "-f", "-"], JSON.stringify(role));
    await k(["create", "--as", SA, "-f", "-"], JSON.stringify(binding));
    // The control: a Role granting what the operator lacks is refused by the escalation check.
    const wider = {
      ...role,
      metadata: { name: "wider", namespace: "crawl" },
      rules: [{ apiGroups: [""], resources: ["secrets"], verbs: ["create"] }],
    };
    assert.match(await kFails(["create", "--as", SA, "-f", "-"], JSON.stringify(wider)), /forbidden|escalat/i);
  });

  it("refuses values that break the schema at install, with the schema's message", async () => {
    const result = await h(["install", "bad", chartDir, "--namespace", NS, "--set", "replicas=-1"]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /values don't meet the specifications of the schema/);
    assert.match(result.stderr, /replicas/);
    const releases = await h(["list", "--namespace", NS, "-q"]);
    assert.deepEqual(releases.stdout.trim().split("\n"), [RELEASE]);
  });

  it("updates the CRDs and RBAC on upgrade", async () => {
    const noKeep = await h([
      "upgrade",
      RELEASE,
      chartDir,
      "--namespace",
      NS,
      "--set",
      "crds.keep=false",
      "--set",
      "replicas=2",
    ]);
    assert.equal(noKeep.code, 0, noKeep.stderr);
    const crd = JSON.parse(await k(["get", "crd", "crawlfeeds.feedcrawl.io", "-o", "json"]));
    assert.equal(crd.metadata.annotations?.["helm.sh/resource-policy"], undefined, "the upgrade rewrote the CRD");
    await k(["-n", NS, "get", "role", `${RELEASE}-feedcrawl-leader-election`]);
    // --reset-values: without new values, helm upgrade would reuse the previous release's.
    const back = await h(["upgrade", RELEASE, chartDir, "--namespace", NS, "--reset-values"]);
    assert.equal(back.code, 0, back.stderr);
    const kept = JSON.parse(await k(["get", "crd", "crawlfeeds.feedcrawl.io", "-o", "json"]));
    assert.equal(kept.metadata.annotations["helm.sh/resource-policy"], "keep");
    assert.match(await kFails(["-n", NS, "get", "role", `${RELEASE}-feedcrawl-leader-election`]), /NotFound|not found/);
  });

  it("keeps the CRDs and every CrawlJob on uninstall (crds.keep), and removes the rest", async () => {
    const job = {
      apiVersion: "feedcrawl.io/v1alpha1",
      kind: "CrawlJob",
      metadata: { name: "kept", namespace: "crawl" },
      spec: {
        spider: { name: "kept", startUrls: ["https://books.example/"] },
        feeds: { "s3://crawl-data/kept/part-%(batch_id)05d.jsonl": { format: "jsonlines" } },
      },
    };
    const file = join(cp.workDir, "kept.json");
    writeFileSync(file, JSON.stringify(job));
    await k(["apply", "-f", file]);
    const result = await h(["uninstall", RELEASE, "--namespace", NS]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout + result.stderr, /kept due to the resource policy/);
    for (const crd of CRDS) await k(["get", "crd", crd]);
    await k(["-n", "crawl", "get", "crawljob", "kept"]);
    assert.match(await kFails(["-n", NS, "get", "deployment", `${RELEASE}-feedcrawl`]), /NotFound|not found/);
    assert.match(await kFails(["get", "clusterrole", `${RELEASE}-feedcrawl`]), /NotFound|not found/);
  });

  it("adopts the kept CRDs on reinstall, and deletes them on uninstall with crds.keep=false", async () => {
    const reinstall = await h(["install", RELEASE, chartDir, "--namespace", NS, "--set", "crds.keep=false"]);
    assert.equal(reinstall.code, 0, reinstall.stderr);
    const result = await h(["uninstall", RELEASE, "--namespace", NS]);
    assert.equal(result.code, 0, result.stderr);
    for (const crd of CRDS) {
      // CRD deletion is asynchronous (the apiserver removes the stored objects first).
      await k(["wait", "--for=delete", `crd/${crd}`, "--timeout=60s"]).catch(() => {});
      assert.match(await kFails(["get", "crd", crd]), /NotFound|not found/);
    }
  });
});
