// The runner pod contract, checked on the objects the operator builds.
import assert from "node:assert/strict";
import { test } from "node:test";
import { runnerJob, runnerRole, runnerRoleBinding, specConfigMap } from "../../operator/crawljob/children.ts";
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
    { name: "AWS_ACCESS_KEY_ID", valueFrom: { secretKeyRef: { name: "s3-creds", key: "accessKeyId" } } },
    { name: "AWS_SECRET_ACCESS_KEY", valueFrom: { secretKeyRef: { name: "s3-creds", key: "secretAccessKey" } } },
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
    { name: "tmp", emptyDir: {} },
  ]);
  assert.equal(j.metadata.ownerReferences[0].controller, true);
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
    { apiGroups: ["feedcrawl.io"], resources: ["crawlfeeds"], verbs: ["create", "get", "list"] },
  ]);
  const binding = runnerRoleBinding(crawlJob()) as Any;
  assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: "books-runner", namespace: "crawl" }]);
  assert.deepEqual(binding.roleRef, { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "books-runner" });
});
