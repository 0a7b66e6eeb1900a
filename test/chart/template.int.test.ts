// `helm template` checks of charts/feedcrawl: the restricted security
// context, the RBAC rules exactly as intended, the CRDs copied verbatim from
// files/crds/, and values the schema must reject. No cluster needed.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { parse } from "yaml";
import { chartDir, find, helm, only, render, renderError } from "./helm.ts";
import { allows, leaderElectionRules, OPERATOR_RULES, type PolicyRule, perJobRunnerRules } from "./rbac-rules.ts";

interface Container {
  name: string;
  image: string;
  command?: string[];
  args: string[];
  securityContext: Record<string, unknown>;
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  ports: { name: string; containerPort: number }[];
  volumeMounts: { name: string; mountPath: string }[];
  resources: Record<string, unknown>;
}

interface DeploymentLike {
  spec: {
    replicas: number;
    strategy?: { type: string };
    template: {
      spec: {
        serviceAccountName: string;
        securityContext: Record<string, unknown>;
        containers: Container[];
        volumes: { name: string; emptyDir?: unknown }[];
      };
    };
  };
}

function operatorContainer(objects: Awaited<ReturnType<typeof render>>): { deployment: DeploymentLike; c: Container } {
  const deployment = only(objects, "Deployment") as unknown as DeploymentLike;
  const c = deployment.spec.template.spec.containers.find((x) => x.name === "operator");
  assert.ok(c, "the Deployment has an `operator` container");
  return { deployment, c };
}

describe("chart: helm lint", () => {
  it("is clean in strict mode (no warnings or errors)", async () => {
    const result = await helm(["lint", "--strict", chartDir]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.doesNotMatch(result.stdout, /\[(WARNING|ERROR)\]/);
    assert.match(result.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it("is clean with watched namespaces, leader election and a ServiceMonitor", async () => {
    const result = await helm([
      "lint",
      "--strict",
      chartDir,
      "--set-json",
      'watchNamespaces=["a","b"]',
      "--set",
      "replicas=2",
      "--set",
      "metrics.serviceMonitor.enabled=true",
    ]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.doesNotMatch(result.stdout, /\[(WARNING|ERROR)\]/);
  });
});

describe("chart: operator Deployment", () => {
  it("runs under the restricted Pod Security Standard with a read-only root filesystem", async () => {
    const { deployment, c } = operatorContainer(await render());
    const pod = deployment.spec.template.spec;
    assert.deepEqual(pod.securityContext, {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      fsGroup: 65532,
      seccompProfile: { type: "RuntimeDefault" },
    });
    assert.deepEqual(c.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    // Scratch space for a read-only root: an emptyDir at /tmp, and no hostPath or other volume types.
    assert.deepEqual(c.volumeMounts, [{ name: "tmp", mountPath: "/tmp" }]);
    assert.deepEqual(pod.volumes, [{ name: "tmp", emptyDir: { sizeLimit: "64Mi" } }]);
    assert.equal(pod.serviceAccountName, "fc-feedcrawl");
  });

  it("runs `feedcrawl operator` with probes, ports, resources and the runner image = its own image", async () => {
    const { deployment, c } = operatorContainer(await render());
    assert.equal(c.image, "ghcr.io/feedcrawl/feedcrawl:0.1.0");
    assert.deepEqual(c.command, ["feedcrawl"]);
    assert.deepEqual(c.args, [
      "operator",
      "--metrics-addr=:8080",
      "--health-addr=:8081",
      "--runner-image=ghcr.io/feedcrawl/feedcrawl:0.1.0",
      "--log-level=info",
    ]);
    assert.deepEqual(c.livenessProbe.httpGet, { path: "/healthz", port: "health" });
    assert.deepEqual(c.readinessProbe.httpGet, { path: "/readyz", port: "health" });
    assert.deepEqual(
      c.ports.map((p) => [p.name, p.containerPort]),
      [
        ["metrics", 8080],
        ["health", 8081],
      ],
    );
    assert.deepEqual(c.resources, { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "512Mi" } });
    // One replica without leader election: never two operators at once, not even in a rollout.
    assert.equal(deployment.spec.replicas, 1);
    assert.deepEqual(deployment.spec.strategy, { type: "Recreate" });
  });

  it("turns leader election on with more than one replica and grants the Lease only then", async () => {
    const objects = await render({ replicas: 2 });
    const { deployment, c } = operatorContainer(objects);
    assert.ok(c.args.includes("--leader-elect"));
    assert.ok(c.args.includes("--leader-election-id=fc-feedcrawl"), "one Lease per release");
    assert.equal(deployment.spec.strategy, undefined, "rolling updates are safe with leader election");
    const role = only(objects, "Role", "fc-feedcrawl-leader-election", "feedcrawl-system") as unknown as {
      rules: PolicyRule[];
    };
    assert.deepEqual(role.rules, leaderElectionRules("fc-feedcrawl"));
    const binding = only(objects, "RoleBinding", "fc-feedcrawl-leader-election", "feedcrawl-system") as unknown as {
      subjects: unknown[];
    };
    assert.deepEqual(binding.subjects, [
      { kind: "ServiceAccount", name: "fc-feedcrawl", namespace: "feedcrawl-system" },
    ]);

    const single = await render();
    assert.ok(!operatorContainer(single).c.args.includes("--leader-elect"));
    assert.equal(find(single, "Role").length, 0, "no Lease rights without leader election");

    const forced = await render({ "leaderElection.enabled": true });
    assert.ok(operatorContainer(forced).c.args.includes("--leader-elect"));
  });

  it("uses the digest, a separate runner image and extra args when given", async () => {
    const digest = `sha256:${"a".repeat(64)}`;
    const { c } = operatorContainer(
      await render({ "image.digest": digest, "runner.image": "registry.local/runner:1", extraArgs: ["--foo=bar"] }),
    );
    assert.equal(c.image, `ghcr.io/feedcrawl/feedcrawl@${digest}`);
    assert.ok(c.args.includes("--runner-image=registry.local/runner:1"));
    assert.equal(c.args.at(-1), "--foo=bar");
  });

  it("passes the webhook private networks and the bucket allow-list only when set", async () => {
    const { c: plain } = operatorContainer(await render());
    assert.ok(
      !plain.args.some((a: string) => a.startsWith("--webhook-private-networks") || a.startsWith("--feed-buckets")),
    );
    const { c } = operatorContainer(
      await render({
        "webhook.privateNetworks": ["10.0.0.0/8", "ingest.data.svc"],
        "feeds.allowedBuckets": ["crawl-data", "archive"],
      }),
    );
    assert.ok(c.args.includes("--webhook-private-networks=10.0.0.0/8,ingest.data.svc"));
    assert.ok(c.args.includes("--feed-buckets=crawl-data,archive"));
  });

  it("ships the CrawlFeed admission policy unless crawlFeedPolicy.create is false", async () => {
    assert.equal(find(await render(), "ValidatingAdmissionPolicy").length, 1);
    assert.equal(find(await render(), "ValidatingAdmissionPolicyBinding").length, 1);
    assert.equal(find(await render({ "crawlFeedPolicy.create": false }), "ValidatingAdmissionPolicy").length, 0);
  });
});

describe("chart: RBAC", () => {
  it("grants the operator exactly the intended rules in a ClusterRole bound to its ServiceAccount", async () => {
    const objects = await render();
    const role = only(objects, "ClusterRole", "fc-feedcrawl") as unknown as { rules: PolicyRule[] };
    assert.deepEqual(role.rules, OPERATOR_RULES);
    const binding = only(objects, "ClusterRoleBinding", "fc-feedcrawl") as unknown as {
      roleRef: unknown;
      subjects: unknown[];
    };
    assert.deepEqual(binding.roleRef, {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: "fc-feedcrawl",
    });
    assert.deepEqual(binding.subjects, [
      { kind: "ServiceAccount", name: "fc-feedcrawl", namespace: "feedcrawl-system" },
    ]);
    only(objects, "ServiceAccount", "fc-feedcrawl", "feedcrawl-system");
  });

  it("holds every permission it grants a runner (Kubernetes forbids granting what one does not hold)", () => {
    for (const rule of perJobRunnerRules("books")) {
      for (const resource of rule.resources) {
        for (const verb of rule.verbs) {
          assert.ok(
            allows(OPERATOR_RULES, rule.apiGroups[0] as string, resource, verb),
            `operator lacks ${verb} ${resource}`,
          );
        }
      }
    }
  });

  it("has no wildcard, pods read-only (never create/delete/exec/log), secrets read-only, nothing cluster-scoped beyond what it reads", async () => {
    const role = only(await render(), "ClusterRole", "fc-feedcrawl") as unknown as { rules: PolicyRule[] };
    for (const rule of role.rules) {
      assert.ok(!rule.verbs.includes("*") && !rule.resources.includes("*") && !rule.apiGroups.includes("*"));
      assert.ok(!rule.verbs.some((v) => ["escalate", "bind", "impersonate"].includes(v)), JSON.stringify(rule));
      assert.ok(!rule.resources.some((r) => ["nodes", "namespaces", "customresourcedefinitions"].includes(r)));
      // Pods: only to read why a runner does not run (RunnerHealthy); no pod subresource at all.
      assert.ok(!rule.resources.some((r) => r.startsWith("pods/")), JSON.stringify(rule));
    }
    const pods = role.rules.filter((r) => r.resources.includes("pods"));
    assert.deepEqual(
      pods.flatMap((r) => r.verbs),
      ["get", "list", "watch"],
    );
    // Secrets: read-only (an informer whose cache keeps key names only; the delivery reads the signing secret).
    const secrets = role.rules.filter((r) => r.resources.includes("secrets"));
    assert.deepEqual(
      secrets.flatMap((r) => r.verbs),
      ["get", "list", "watch"],
    );
  });

  it("uses one Role per watched namespace and no operator ClusterRole when watchNamespaces is set", async () => {
    const objects = await render({ watchNamespaces: ["team-a", "team-b"] });
    assert.deepEqual(
      find(objects, "ClusterRole").map((o) => o.metadata.name),
      ["fc-feedcrawl-view", "fc-feedcrawl-edit"],
      "only the aggregated user roles stay cluster-wide",
    );
    assert.equal(find(objects, "ClusterRoleBinding").length, 0);
    for (const ns of ["team-a", "team-b"]) {
      const role = only(objects, "Role", "fc-feedcrawl", ns) as unknown as { rules: PolicyRule[] };
      assert.deepEqual(role.rules, OPERATOR_RULES);
      const binding = only(objects, "RoleBinding", "fc-feedcrawl", ns) as unknown as { subjects: unknown[] };
      assert.deepEqual(binding.subjects, [
        { kind: "ServiceAccount", name: "fc-feedcrawl", namespace: "feedcrawl-system" },
      ]);
    }
    const { c } = operatorContainer(objects);
    assert.deepEqual(
      c.args.filter((a) => a.startsWith("--namespace")),
      ["--namespace=team-a", "--namespace=team-b"],
    );
  });

  it("aggregates read access into view and write access into edit/admin", async () => {
    const objects = await render();
    const view = only(objects, "ClusterRole", "fc-feedcrawl-view") as unknown as K8sRole;
    assert.equal(view.metadata.labels?.["rbac.authorization.k8s.io/aggregate-to-view"], "true");
    assert.deepEqual(
      view.rules.flatMap((r) => r.verbs),
      ["get", "list", "watch"],
    );
    const edit = only(objects, "ClusterRole", "fc-feedcrawl-edit") as unknown as K8sRole;
    assert.equal(edit.metadata.labels?.["rbac.authorization.k8s.io/aggregate-to-edit"], "true");
    assert.equal(edit.metadata.labels?.["rbac.authorization.k8s.io/aggregate-to-view"], undefined);
    assert.ok(!allows(edit.rules, "feedcrawl.io", "crawlfeeds", "create"), "users do not forge CrawlFeeds");
    assert.ok(allows(edit.rules, "feedcrawl.io", "crawlfeeds", "patch"), "users may annotate for redelivery");
    assert.equal(find(await render({ "rbac.aggregateToDefaultRoles": false }), "ClusterRole").length, 1);
  });

  it("renders no RBAC when rbac.create is false", async () => {
    const objects = await render({ "rbac.create": false });
    for (const kind of ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]) {
      assert.equal(find(objects, kind).length, 0, kind);
    }
  });
});

interface K8sRole {
  metadata: { labels?: Record<string, string> };
  rules: PolicyRule[];
}

describe("chart: CRDs", () => {
  const crdFiles = readdirSync(join(chartDir, "files", "crds")).filter((f) => f.endsWith(".yaml"));

  it("has the generated CRDs in files/crds (written by crds/generate.ts)", () => {
    assert.deepEqual(crdFiles.sort(), [
      "feedcrawl.io_crawlfeeds.yaml",
      "feedcrawl.io_crawljobs.yaml",
      "feedcrawl.io_crawlschedules.yaml",
    ]);
  });

  it("installs every CRD with its spec unchanged and keeps it on uninstall by default", async () => {
    const rendered = find(await render(), "CustomResourceDefinition");
    assert.equal(rendered.length, crdFiles.length);
    for (const file of crdFiles) {
      const source = parse(readFileSync(join(chartDir, "files", "crds", file), "utf8")) as {
        metadata: { name: string };
        spec: unknown;
      };
      const crd = rendered.find((o) => o.metadata.name === source.metadata.name);
      assert.ok(crd, `${source.metadata.name} is rendered`);
      assert.deepEqual(crd.spec, source.spec, `${file}: the spec is copied verbatim`);
      assert.equal(crd.metadata.annotations?.["helm.sh/resource-policy"], "keep");
      assert.equal(crd.metadata.labels?.["app.kubernetes.io/managed-by"], "Helm");
    }
  });

  it("drops the keep policy with crds.keep=false and the CRDs with crds.install=false", async () => {
    for (const crd of find(await render({ "crds.keep": false }), "CustomResourceDefinition")) {
      assert.equal(crd.metadata.annotations?.["helm.sh/resource-policy"], undefined);
    }
    assert.equal(find(await render({ "crds.install": false }), "CustomResourceDefinition").length, 0);
  });
});

describe("chart: metrics", () => {
  it("exposes /metrics through a Service and renders a ServiceMonitor only when asked", async () => {
    const objects = await render();
    const svc = only(objects, "Service", "fc-feedcrawl-metrics") as unknown as {
      spec: { ports: unknown[]; selector: Record<string, string> };
    };
    assert.deepEqual(svc.spec.ports, [{ name: "metrics", port: 8080, targetPort: "metrics", protocol: "TCP" }]);
    assert.equal(svc.spec.selector["app.kubernetes.io/component"], "operator");
    assert.equal(find(objects, "ServiceMonitor").length, 0);

    const sm = only(
      await render({ "metrics.serviceMonitor.enabled": true, "metrics.serviceMonitor.labels": { release: "prom" } }),
      "ServiceMonitor",
    ) as unknown as { metadata: { labels: Record<string, string> }; spec: { endpoints: unknown[] } };
    assert.equal(sm.metadata.labels.release, "prom");
    assert.deepEqual(sm.spec.endpoints, [{ port: "metrics", path: "/metrics", interval: "30s", scrapeTimeout: "10s" }]);
  });

  it("refuses a ServiceMonitor without the metrics Service", async () => {
    const result = await renderError({ "metrics.serviceMonitor.enabled": true, "metrics.service.enabled": false });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /metrics\.serviceMonitor\.enabled needs metrics\.service\.enabled/);
  });
});

describe("chart: values.schema.json rejects bad values with the schema's message", () => {
  // helm reports every schema violation at once, each at its path: one run covers them all.
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ["an unknown top-level key", { replica: 2 }, /at '': additional properties 'replica' not allowed/],
    ["a typo in a nested key", { "image.tga": "v1" }, /at '\/image': additional properties 'tga' not allowed/],
    ["a string where a number goes", { replicas: "two" }, /at '\/replicas': got string, want integer/],
    [
      "privilege escalation",
      { "securityContext.allowPrivilegeEscalation": true },
      /at '\/securityContext\/allowPrivilegeEscalation': value must be false/,
    ],
    ["running as root", { "podSecurityContext.runAsNonRoot": false }, /at '\/podSecurityContext\/runAsNonRoot'/],
    [
      "dropping fewer capabilities",
      { "securityContext.capabilities.drop": ["NET_RAW"] },
      /at '\/securityContext\/capabilities\/drop'/,
    ],
    ["a bad namespace name", { watchNamespaces: ["Team_A"] }, /at '\/watchNamespaces\/0': 'Team_A' does not match/],
    ["an unknown log level", { logLevel: "fatal" }, /at '\/logLevel': value must be one of/],
    ["a bad image digest", { "image.digest": "latest" }, /at '\/image\/digest'/],
    ["a bad pull policy", { "image.pullPolicy": "Sometimes" }, /at '\/image\/pullPolicy'/],
    ["a port out of range", { "metrics.port": 70000 }, /at '\/metrics\/port': maximum/],
    ["a non-boolean CRD switch", { "crds.keep": "yes" }, /at '\/crds\/keep': got string, want boolean/],
    ["an unknown metrics key", { "metrics.path": "/m" }, /at '\/metrics': additional properties 'path' not allowed/],
    [
      "a private network that is not a list",
      { "webhook.privateNetworks": "10.0.0.0/8" },
      /at '\/webhook\/privateNetworks'/,
    ],
  ];
  let all: Awaited<ReturnType<typeof renderError>>;
  before(async () => {
    all = await renderError(Object.assign({}, ...bad.map(([, values]) => values)));
  });

  it("fails on a single bad value, before rendering anything", async () => {
    const result = await renderError({ replica: 2 });
    assert.notEqual(result.code, 0);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, /values don't meet the specifications of the schema/);
  });
  for (const [what, , message] of bad) {
    it(`rejects ${what}`, () => {
      assert.notEqual(all.code, 0);
      assert.match(all.stderr, /values don't meet the specifications of the schema/);
      assert.match(all.stderr, message);
    });
  }

  it("accepts the defaults and a full set of valid overrides", async () => {
    const objects = await render({
      replicas: 3,
      watchNamespaces: ["crawl"],
      "image.tag": "0.1.1",
      "resources.limits.cpu": 1,
      "metrics.serviceMonitor.enabled": true,
      extraEnv: [{ name: "NODE_OPTIONS", value: "--max-old-space-size=384" }],
      "securityContext.capabilities.add": ["NET_BIND_SERVICE"],
    });
    assert.equal(only(objects, "Deployment").metadata.name, "fc-feedcrawl");
  });
});
