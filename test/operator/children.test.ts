// The runner pod contract, checked on the objects the operator builds.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  runnerJob,
  runnerRole,
  runnerRoleBinding,
  runnerServiceAccount,
  specConfigMap,
} from "../../operator/crawljob/children.ts";
import { runnerNodeOptions } from "../../operator/crawljob/runner-pod.ts";
import { parseByteQuantity } from "../../spec/semantics.ts";
import { validateCrawlJobSpec } from "../../spec/validate.ts";
import { crawlJob, crawlJobSpec } from "./fixtures.ts";

// biome-ignore lint/suspicious/noExplicitAny: manifests read back from the API are untyped JSON
type Any = Record<string, any>;

test("the snapshot ConfigMap holds crawljob.json = {apiVersion, kind, metadata{name,namespace,uid,generation}, spec}", () => {
  const job = crawlJob(crawlJobSpec({ storage: { s3: { credentialsSecretRef: { name: "s3-creds" } } } }));
  const cm = specConfigMap(job) as Any;
  assert.equal(cm.metadata.name, "books-spec");
  assert.deepEqual(Object.keys(cm.data), ["crawljob.json"]);
  const snapshot = JSON.parse(cm.data["crawljob.json"]);
  assert.deepEqual(snapshot, {
    apiVersion: "feedcrawl.io/v1alpha1",
    kind: "CrawlJob",
    metadata: { name: "books", namespace: "crawl", uid: job.metadata.uid, generation: 1 },
    spec: job.spec,
  });
  assert.deepEqual(cm.metadata.ownerReferences, [
    {
      apiVersion: "feedcrawl.io/v1alpha1",
      kind: "CrawlJob",
      name: "books",
      uid: job.metadata.uid,
      controller: true,
      blockOwnerDeletion: true,
    },
  ]);
});

test("the runner Job: Indexed, shards, image, command, env, mounts, restricted security context", () => {
  const job = crawlJob(
    crawlJobSpec({
      runner: { parallelism: 3, backoffLimit: 2, activeDeadlineSeconds: 600 },
      storage: { s3: { credentialsSecretRef: { name: "s3-creds" } } },
    }),
  );
  const j = runnerJob(job, { defaultImage: "feedcrawl:test" }) as Any;
  assert.equal(j.metadata.name, "books-runner");
  assert.equal(j.spec.completionMode, "Indexed");
  assert.equal(j.spec.completions, 3);
  assert.equal(j.spec.parallelism, 3);
  assert.equal(j.spec.backoffLimit, 2);
  assert.equal(j.spec.activeDeadlineSeconds, 600);
  const pod = j.spec.template.spec;
  assert.equal(pod.serviceAccountName, "books-runner");
  assert.equal(pod.automountServiceAccountToken, true);
  assert.equal(pod.restartPolicy, "Never");
  assert.deepEqual(pod.securityContext.seccompProfile, { type: "RuntimeDefault" });
  assert.equal(pod.securityContext.runAsNonRoot, true);
  const c = pod.containers[0];
  assert.equal(c.name, "runner");
  assert.equal(c.image, "feedcrawl:test");
  assert.deepEqual(c.command, ["feedcrawl"]);
  assert.deepEqual(c.args, ["run"]);
  assert.deepEqual(c.env, [
    { name: "FEEDCRAWL_SPEC", value: "/etc/feedcrawl/crawljob.json" },
    { name: "FEEDCRAWL_SHARD_COUNT", value: "3" },
    { name: "FEEDCRAWL_SPOOL_DIR", value: "/tmp/feedcrawl-spool" },
    { name: "FEEDCRAWL_SPOOL_MAX_BYTES", value: String(2 ** 30) },
    { name: "AWS_ACCESS_KEY_ID", valueFrom: { secretKeyRef: { name: "s3-creds", key: "accessKeyId" } } },
    { name: "AWS_SECRET_ACCESS_KEY", valueFrom: { secretKeyRef: { name: "s3-creds", key: "secretAccessKey" } } },
    // Two malloc arenas; a 4 MiB young generation, the old one 75 % of the 512Mi limit (docs/runner.md "Performance").
    { name: "MALLOC_ARENA_MAX", value: "2" },
    { name: "NODE_OPTIONS", value: "--max-semi-space-size=4 --max-old-space-size=384" },
  ]);
  assert.deepEqual(c.securityContext, {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    runAsUser: 65532,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  });
  assert.deepEqual(c.volumeMounts, [
    { name: "spec", mountPath: "/etc/feedcrawl", readOnly: true },
    { name: "tmp", mountPath: "/tmp" },
  ]);
  assert.deepEqual(pod.volumes, [
    { name: "spec", configMap: { name: "books-spec" } },
    { name: "tmp", emptyDir: { sizeLimit: "2Gi" } },
  ]);
  assert.equal(j.metadata.ownerReferences[0].controller, true);
  // What real pods need: time to store open batches, measured resources, fail fast on bad configuration.
  assert.equal(pod.terminationGracePeriodSeconds, 120);
  assert.equal(c.terminationMessagePolicy, "FallbackToLogsOnError");
  assert.deepEqual(c.resources, { requests: { cpu: "250m", memory: "256Mi" }, limits: { memory: "512Mi" } });
  assert.deepEqual(j.spec.podFailurePolicy.rules, [
    { action: "FailJob", onExitCodes: { containerName: "runner", operator: "In", values: [2] } },
    { action: "Ignore", onExitCodes: { containerName: "runner", operator: "In", values: [143] } },
    { action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] },
  ]);
  for (const key of ["nodeSelector", "tolerations", "affinity", "imagePullSecrets"]) assert.equal(key in pod, false);
  assert.equal("envFrom" in c, false);
});

test("spec.runner's pod settings reach the template; the security context and volumes stay the operator's", () => {
  const runner = {
    terminationGracePeriodSeconds: 600,
    tmpSizeLimit: "10Gi",
    resources: { limits: { memory: "4Gi" } },
    nodeSelector: { "kubernetes.io/arch": "arm64" },
    tolerations: [{ key: "crawl", operator: "Exists" as const, effect: "NoSchedule" as const }],
    affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } } },
    imagePullSecrets: [{ name: "regcred" }],
    env: [
      { name: "SITE_TOKEN", valueFrom: { secretKeyRef: { name: "site", key: "token" } } },
      { name: "NODE_OPTIONS", value: "--max-old-space-size=2048" },
    ],
    envFrom: [{ secretRef: { name: "site-creds" } }],
    serviceAccountAnnotations: { "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/crawl" },
  };
  const job = crawlJob(crawlJobSpec({ runner }));
  const pod = (runnerJob(job, { defaultImage: "op:1" }) as Any).spec.template.spec;
  const c = pod.containers[0];
  assert.equal(pod.terminationGracePeriodSeconds, 600);
  assert.deepEqual(pod.volumes[1], { name: "tmp", emptyDir: { sizeLimit: "10Gi" } });
  assert.deepEqual(c.env.slice(2, 4), [
    { name: "FEEDCRAWL_SPOOL_DIR", value: "/tmp/feedcrawl-spool" },
    { name: "FEEDCRAWL_SPOOL_MAX_BYTES", value: String(5 * 2 ** 30) },
  ]);
  assert.deepEqual(
    c.env.slice(-2),
    [
      runner.env[0],
      // Ours first, the user's after them: V8 keeps the last of a repeated flag; the old space from the 4Gi limit.
      { name: "NODE_OPTIONS", value: "--max-semi-space-size=4 --max-old-space-size=3072 --max-old-space-size=2048" },
    ],
    "the user's env after the operator's, their NODE_OPTIONS after ours",
  );
  assert.equal(c.env.filter((e: { name: string }) => e.name === "NODE_OPTIONS").length, 1);
  assert.deepEqual(c.envFrom, runner.envFrom);
  assert.deepEqual(c.resources, { limits: { memory: "4Gi" } }, "spec.runner.resources replaces the defaults");
  assert.deepEqual(pod.nodeSelector, runner.nodeSelector);
  assert.deepEqual(pod.tolerations, runner.tolerations);
  assert.deepEqual(pod.affinity, runner.affinity);
  assert.deepEqual(pod.imagePullSecrets, runner.imagePullSecrets);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(pod.volumes.length, 2);
  assert.deepEqual(runnerServiceAccount(job).metadata.annotations, runner.serviceAccountAnnotations);
  assert.equal(runnerServiceAccount(crawlJob()).metadata.annotations, undefined);
  // env and envFrom go to the pod, not into the snapshot ConfigMap.
  const snapshot = JSON.parse((specConfigMap(job) as Any).data["crawljob.json"]);
  assert.equal(snapshot.spec.runner.env, undefined);
  assert.equal(snapshot.spec.runner.envFrom, undefined);
  assert.equal(snapshot.spec.runner.tmpSizeLimit, "10Gi");
  assert.equal(JSON.stringify(snapshot).includes("max-old-space-size"), false);
  assert.deepEqual(
    (runnerJob(crawlJob(crawlJobSpec({ runner: { resources: {} } })), { defaultImage: "x" }) as Any).spec.template.spec
      .containers[0].resources,
    {},
  );
});

test("NODE_OPTIONS: the old space follows the memory limit; a user's value from a Secret or ConfigMap, or their MALLOC_ARENA_MAX, replaces ours", () => {
  const nodeOptions = (runner: Record<string, unknown>) =>
    (
      runnerJob(crawlJob(crawlJobSpec({ runner })), { defaultImage: "x" }) as Any
    ).spec.template.spec.containers[0].env.filter((e: { name: string }) => e.name === "NODE_OPTIONS");
  assert.deepEqual(nodeOptions({ resources: {} }), [{ name: "NODE_OPTIONS", value: "--max-semi-space-size=4" }]);
  assert.deepEqual(nodeOptions({ resources: { limits: { memory: "2Gi" } } }), [
    { name: "NODE_OPTIONS", value: "--max-semi-space-size=4 --max-old-space-size=1536" },
  ]);
  const fromConfigMap = { name: "NODE_OPTIONS", valueFrom: { configMapKeyRef: { name: "node", key: "options" } } };
  assert.deepEqual(nodeOptions({ env: [fromConfigMap] }), [fromConfigMap]);
  const arenas = { name: "MALLOC_ARENA_MAX", value: "4" };
  const env = (runnerJob(crawlJob(crawlJobSpec({ runner: { env: [arenas] } })), { defaultImage: "x" }) as Any).spec
    .template.spec.containers[0].env;
  assert.deepEqual(
    env.filter((e: { name: string }) => e.name === "MALLOC_ARENA_MAX"),
    [arenas],
    "a user's MALLOC_ARENA_MAX replaces ours",
  );
  assert.equal(runnerNodeOptions("512Mi"), "--max-semi-space-size=4 --max-old-space-size=384");
});

test("byte quantities, and the runner fields CEL checks at admission checked again (one message per rule)", async () => {
  assert.equal(parseByteQuantity("2Gi"), 2 * 2 ** 30);
  assert.equal(parseByteQuantity("1500M"), 1.5e9);
  assert.equal(parseByteQuantity("0.5Gi"), 2 ** 29);
  assert.equal(parseByteQuantity("2 Gi"), undefined);
  assert.equal(parseByteQuantity("1m"), undefined, "milli-bytes are not a size");
  const errors = (
    await validateCrawlJobSpec(
      crawlJobSpec({
        storage: { s3: { credentialsSecretRef: { name: "s3" } } },
        runner: {
          tmpSizeLimit: "100Mi",
          env: [
            { name: "FEEDCRAWL_SPEC", value: "/x" },
            { name: "JOB_COMPLETION_INDEX", value: "3" },
            { name: "AWS_ACCESS_KEY_ID", value: "x" },
            { name: "FINE", value: "y" },
          ],
        },
      }),
    )
  ).filter((e) => e.path.startsWith("spec.runner"));
  assert.deepEqual(
    errors.map((e) => e.path),
    ["spec.runner.tmpSizeLimit", "spec.runner.env", "spec.runner.env"],
  );
  assert.match(errors[1]!.message, /FEEDCRAWL_\* and JOB_COMPLETION_INDEX are set by the operator/);
  assert.match(errors[2]!.message, /come from spec\.storage\.s3\.credentialsSecretRef/);
  assert.deepEqual(
    (await validateCrawlJobSpec(crawlJobSpec({ runner: { env: [{ name: "AWS_ACCESS_KEY_ID", value: "x" }] } }))).filter(
      (e) => e.path.startsWith("spec.runner"),
    ),
    [],
  );
});

test("spec.runner.image wins over the operator's image; no deadline when 0; suspend follows the spec", () => {
  const j = runnerJob(crawlJob(crawlJobSpec({ runner: { image: "custom:1" }, suspend: true })), {
    defaultImage: "op:1",
  }) as Any;
  assert.equal(j.spec.template.spec.containers[0].image, "custom:1");
  assert.equal("activeDeadlineSeconds" in j.spec, false);
  assert.equal(j.spec.suspend, true);
  assert.equal(j.spec.completions, 1);
});

test("the per-job Role grants exactly the contract's rules", () => {
  const role = runnerRole(crawlJob()) as Any;
  assert.deepEqual(role.rules, [
    { apiGroups: ["feedcrawl.io"], resources: ["crawljobs"], resourceNames: ["books"], verbs: ["get"] },
    { apiGroups: ["feedcrawl.io"], resources: ["crawljobs/status"], resourceNames: ["books"], verbs: ["get", "patch"] },
    { apiGroups: ["feedcrawl.io"], resources: ["crawljobs/finalizers"], resourceNames: ["books"], verbs: ["update"] },
    { apiGroups: ["feedcrawl.io"], resources: ["crawlfeeds"], verbs: ["create"] },
  ]);
  const binding = runnerRoleBinding(crawlJob()) as Any;
  assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: "books-runner", namespace: "crawl" }]);
  assert.deepEqual(binding.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "books-runner" });
});
