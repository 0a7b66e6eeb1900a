// What real pods need from the runner Job, on the real API server with the
// operator in-process: the Job's template as stored (grace period, /tmp
// sizeLimit, spool env, podFailurePolicy, default resources, spec.runner's
// pod settings — the API server validated all of it when the operator created
// the Job), the ServiceAccount's workload-identity annotations, and what the
// runner pods report. There is no kubelet: the test writes the pod status a
// kubelet would write (test/operator/kubelet.ts creates the Pod owned by the
// Job, as the Job controller does), and for exit code 2 it plays the Job with
// the real `feedcrawl run`, whose spec file is missing.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import type { CrawlJobSpec } from "../../crds/schema/crawljob.ts";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import { CONFIGMAPS, EVENTS, JOBS, NAMESPACES, SERVICEACCOUNTS } from "../../kube/resources.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually } from "../platform/fixtures.ts";
import {
  condition,
  createCrawlJob,
  createSecret,
  installCrds,
  type RunningOperator,
  readCrawlJob,
  startOperator,
  tempDir,
} from "./harness.ts";
import { containerStatus, createJobPod, playJob, spawnRunner, writePodStatus } from "./kubelet.ts";

// biome-ignore lint/suspicious/noExplicitAny: manifests read back from the API
type Any = Record<string, any>;

const PODS = { group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true };
const PROXY_PASSWORD = "proxy-password-value-never-in-configmap";

describe("runner pods: the Job's template, and pod problems as CrawlJob conditions (kubelet played by the test)", () => {
  const kc = adminKubeConfig();
  const client = new KubeClient(kc);
  const workDir = tempDir("op-pods");
  let ns: Disposable;
  let operator: RunningOperator;

  const spec = (runner: CrawlJobSpec["runner"] = {}): CrawlJobSpec => ({
    spider: {
      name: "books",
      startUrls: ["https://books.example/"],
      extract: [{ name: "product", itemSelector: "article", fields: { title: { selector: "h1", text: true } } }],
    },
    feeds: { "s3://crawl-data/%(name)s/part-%(batch_id)05d.jsonl": { format: "jsonlines", batchItemCount: 10 } },
    runner,
  });

  /** The CrawlJob's runner Job; a timeout names the CrawlJob's conditions. */
  const runnerJobOf = (name: string) =>
    eventually(`the runner Job of ${name}`, () =>
      client.getOrUndefined<Any & KubeObject>(JOBS, ns.name, `${name}-runner`),
    ).catch(async (err: Error) => {
      const job = await readCrawlJob(client, ns.name, name);
      throw new Error(`${err.message}; CrawlJob conditions: ${JSON.stringify(job.status?.conditions)}`);
    });

  /** Waits until the CrawlJob's condition has this status and reason. */
  const untilReason = (name: string, type: string, status: string, reason: string) =>
    eventually(
      `CrawlJob ${name}: ${type}=${status}/${reason}`,
      async () => {
        const job = await readCrawlJob(client, ns.name, name);
        const c = condition(job, type);
        return c?.status === status && c.reason === reason ? job : undefined;
      },
      30_000,
    );

  /** What the Job controller writes while its pods are created but none runs. */
  const jobPending = (job: Any & KubeObject) =>
    client.updateStatus(JOBS, {
      ...job,
      status: { startTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"), active: 1, ready: 0 },
    });

  before(async () => {
    await installCrds();
    ns = await createNamespace("op-pods");
    await createSecret(client, ns.name, "site", { token: "site-token-value-never-in-status" });
    await createSecret(client, ns.name, "proxy-auth", { username: "crawler", password: PROXY_PASSWORD });
    operator = await startOperator(kc, { namespaces: [ns.name], workDir });
  });

  after(async () => {
    await operator?.stop();
    await ns?.cleanup();
    await client.close();
  });

  test("defaults: grace period, /tmp sizeLimit with the spool in it, podFailurePolicy, measured resources", async () => {
    await createCrawlJob(client, ns.name, "plain", spec());
    const job = await runnerJobOf("plain");
    const pod = job.spec.template.spec;
    const c = pod.containers[0];
    assert.equal(pod.terminationGracePeriodSeconds, 120);
    assert.equal(pod.restartPolicy, "Never");
    assert.deepEqual(pod.volumes.find((v: Any) => v.name === "tmp").emptyDir, { sizeLimit: "2Gi" });
    assert.deepEqual(c.volumeMounts.find((m: Any) => m.name === "tmp").mountPath, "/tmp");
    const env = Object.fromEntries(c.env.map((e: Any) => [e.name, e.value]));
    assert.equal(env.FEEDCRAWL_SPOOL_DIR, "/tmp/feedcrawl-spool");
    assert.equal(env.FEEDCRAWL_SPOOL_MAX_BYTES, String(2 ** 30), "half the sizeLimit: the runner's 1 GiB default");
    assert.deepEqual(c.resources, { requests: { cpu: "250m", memory: "256Mi" }, limits: { memory: "512Mi" } });
    assert.equal(env.NODE_OPTIONS, "--max-semi-space-size=4 --max-old-space-size=384", "V8 heap sized from the limit");
    assert.equal(env.MALLOC_ARENA_MAX, "2");
    assert.equal(c.terminationMessagePolicy, "FallbackToLogsOnError");
    assert.deepEqual(job.spec.podFailurePolicy.rules, [
      { action: "FailJob", onExitCodes: { containerName: "runner", operator: "In", values: [2] } },
      { action: "Ignore", onExitCodes: { containerName: "runner", operator: "In", values: [143] } },
      { action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] },
    ]);
  });

  test("spec.runner's pod settings reach the stored template and the ServiceAccount; security stays restricted", async () => {
    const runner: CrawlJobSpec["runner"] = {
      terminationGracePeriodSeconds: 400,
      tmpSizeLimit: "8Gi",
      resources: { requests: { cpu: "1", memory: "1Gi" }, limits: { memory: "3Gi" } },
      nodeSelector: { "feedcrawl.io/pool": "crawlers" },
      tolerations: [{ key: "dedicated", operator: "Equal", value: "crawl", effect: "NoSchedule" }],
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: "kubernetes.io/arch", operator: "In", values: ["amd64"] }] },
            ],
          },
        },
      },
      imagePullSecrets: [{ name: "regcred" }],
      env: [{ name: "SITE_TOKEN", valueFrom: { secretKeyRef: { name: "site", key: "token" } } }],
      envFrom: [{ configMapRef: { name: "site-settings", optional: true }, prefix: "SITE_" }],
      serviceAccountAnnotations: { "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/crawl" },
    };
    await createCrawlJob(client, ns.name, "tuned", spec(runner));
    const job = await runnerJobOf("tuned");
    const pod = job.spec.template.spec;
    const c = pod.containers[0];
    assert.equal(pod.terminationGracePeriodSeconds, 400);
    assert.deepEqual(pod.volumes.find((v: Any) => v.name === "tmp").emptyDir, { sizeLimit: "8Gi" });
    assert.equal(c.env.find((e: Any) => e.name === "FEEDCRAWL_SPOOL_MAX_BYTES").value, String(4 * 2 ** 30));
    assert.deepEqual(c.resources, runner.resources);
    assert.deepEqual(pod.nodeSelector, runner.nodeSelector);
    assert.deepEqual(pod.tolerations, runner.tolerations);
    assert.deepEqual(pod.affinity, runner.affinity);
    assert.deepEqual(pod.imagePullSecrets, runner.imagePullSecrets);
    assert.deepEqual(c.env.at(-1), runner.env![0]);
    assert.deepEqual(c.envFrom, runner.envFrom);
    assert.deepEqual(c.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: 65532,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    const sa = await client.get(SERVICEACCOUNTS, ns.name, "tuned-runner");
    assert.deepEqual(sa.metadata.annotations, runner.serviceAccountAnnotations);
    // A Pod from this template passes the API server's pod validation (as the Job controller's would).
    const created = await createJobPod(client, job, 0);
    assert.equal(created.spec.containers[0].env.at(-1).valueFrom.secretKeyRef.name, "site");
  });

  test("settings.proxy.credentialsSecretRef: env from the Secret in the template, never in the spec ConfigMap", async () => {
    const base = spec();
    const proxied = (credentialsSecretRef: Any) => ({
      ...base,
      spider: { ...base.spider, settings: { proxy: { urls: ["http://proxy.internal:3128"], credentialsSecretRef } } },
    });
    await createCrawlJob(client, ns.name, "proxied", proxied({ name: "proxy-auth" }));
    const job = await runnerJobOf("proxied");
    const env = job.spec.template.spec.containers[0].env as Any[];
    assert.deepEqual(
      env.filter((e) => e.name.startsWith("FEEDCRAWL_PROXY_")),
      [
        { name: "FEEDCRAWL_PROXY_USERNAME", valueFrom: { secretKeyRef: { name: "proxy-auth", key: "username" } } },
        { name: "FEEDCRAWL_PROXY_PASSWORD", valueFrom: { secretKeyRef: { name: "proxy-auth", key: "password" } } },
      ],
    );
    const cm = await client.get<Any & KubeObject>(CONFIGMAPS, ns.name, "proxied-spec");
    assert.match(JSON.stringify(cm.data), /proxy-auth/, "the spec names the Secret");
    assert.ok(!JSON.stringify(cm).includes(PROXY_PASSWORD), "…but never holds its values");
    assert.ok(!JSON.stringify(job).includes(PROXY_PASSWORD));

    // One key holding user:password, from a Secret that does not exist: Validated=False/SecretNotFound, no Job.
    await createCrawlJob(client, ns.name, "proxied-missing", proxied({ name: "no-such-secret", key: "userpass" }));
    const failed = await untilReason("proxied-missing", "Validated", "False", "SecretNotFound");
    assert.match(condition(failed, "Validated")?.message ?? "", /spider\.settings\.proxy\.credentialsSecretRef\.name/);
    assert.equal(await client.getOrUndefined(JOBS, ns.name, "proxied-missing-runner"), undefined);
    // The CRD's CEL rule: a Secret and user:password@ in a URL exclude each other.
    await assert.rejects(
      createCrawlJob(client, ns.name, "proxied-both", {
        ...base,
        spider: {
          ...base.spider,
          settings: {
            proxy: { urls: ["http://u:p@proxy.internal:3128"], credentialsSecretRef: { name: "proxy-auth" } },
          },
        },
      }),
      /exclude each other/,
    );
  });

  test("spider.moduleConfigMapRef: the key mounted read-only; the pod still passes the restricted Pod Security Standard", async () => {
    await client.create(CONFIGMAPS, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "spider-code", namespace: ns.name },
      data: { "parse.mjs": "export function parse() { return []; }\n" },
    } as KubeObject);
    const base = spec();
    const withModule = {
      ...base,
      spider: { ...base.spider, moduleConfigMapRef: { name: "spider-code", key: "parse.mjs" } },
    };
    await createCrawlJob(client, ns.name, "moduled", withModule);
    const job = await runnerJobOf("moduled");
    const pod = job.spec.template.spec;
    assert.deepEqual(
      pod.volumes.find((v: Any) => v.name === "spider-module"),
      {
        name: "spider-module",
        configMap: { name: "spider-code", items: [{ key: "parse.mjs", path: "parse.mjs" }], defaultMode: 0o444 },
      },
    );
    assert.deepEqual(
      pod.containers[0].volumeMounts.find((m: Any) => m.name === "spider-module"),
      { name: "spider-module", mountPath: "/etc/feedcrawl-module", readOnly: true },
    );
    // PodSecurity admission (restricted) accepts a Pod from this template.
    const restricted = { "pod-security.kubernetes.io/enforce": "restricted" };
    await client.patch(NAMESPACES, undefined, ns.name, { metadata: { labels: restricted } });
    try {
      await createJobPod(client, job, 0);
      // …and is enforcing: the same template with a hostPath volume is refused.
      const hostPath = structuredClone(job);
      hostPath.spec.template.spec.volumes.push({ name: "host", hostPath: { path: "/etc" } });
      await assert.rejects(createJobPod(client, hostPath, 1), /violates PodSecurity "restricted/);
    } finally {
      await client.patch(NAMESPACES, undefined, ns.name, {
        metadata: { labels: { "pod-security.kubernetes.io/enforce": null } },
      });
    }
    // A ConfigMap that does not exist, or lacks the key: Validated=False naming the field, no Job.
    await createCrawlJob(client, ns.name, "moduled-missing", {
      ...base,
      spider: { ...base.spider, moduleConfigMapRef: { name: "no-such-code", key: "parse.mjs" } },
    });
    const missing = await untilReason("moduled-missing", "Validated", "False", "ConfigMapNotFound");
    assert.match(condition(missing, "Validated")?.message ?? "", /spider\.moduleConfigMapRef/);
    assert.equal(await client.getOrUndefined(JOBS, ns.name, "moduled-missing-runner"), undefined);
    await createCrawlJob(client, ns.name, "moduled-nokey", {
      ...base,
      spider: { ...base.spider, moduleConfigMapRef: { name: "spider-code", key: "other.mjs" } },
    });
    await untilReason("moduled-nokey", "Validated", "False", "ConfigMapKeyMissing");
    // The CRD's CEL rule: a path and a ConfigMap exclude each other.
    await assert.rejects(
      createCrawlJob(client, ns.name, "moduled-both", {
        ...withModule,
        spider: { ...withModule.spider, module: "./parse.mjs" },
      }),
      /exclude each other/,
    );
  });

  test("a pod that cannot pull its image: RunnerHealthy=False/ImagePullBackOff with the kubelet's message; Pending", async () => {
    await createCrawlJob(client, ns.name, "pull", spec());
    const job = await runnerJobOf("pull");
    await jobPending(job);
    // A pod with the CrawlJob's labels that the runner Job does not own is not the runner's.
    await client.create(PODS, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "impostor", namespace: ns.name, labels: job.spec.template.metadata.labels },
      spec: { containers: [{ name: "x", image: "x" }] },
    } as KubeObject);
    const pod = await createJobPod(client, job, 0);
    const image = job.spec.template.spec.containers[0].image;
    const message = `Back-off pulling image "${image}": ErrImagePull: failed to resolve reference`;
    await writePodStatus(client, pod, {
      phase: "Pending",
      containerStatuses: [containerStatus(image, { waiting: { reason: "ImagePullBackOff", message } })],
    });
    const seen = await untilReason("pull", "RunnerHealthy", "False", "ImagePullBackOff");
    assert.equal(condition(seen, "RunnerHealthy")?.message, `Pod ${pod.metadata.name} (shard 0): ${message}`);
    assert.equal(seen.status?.phase, "Pending");
    assert.equal(condition(seen, "RunnerReady")?.reason, "WaitingForPods");
    assert.match(condition(seen, "Succeeded")!.message, /Waiting for the runner pods: ImagePullBackOff/);
    const events = await eventually("a Warning Event ImagePullBackOff", async () => {
      const list = await client.list<Any & KubeObject>(EVENTS, {
        namespace: ns.name,
        fieldSelector: "involvedObject.name=pull",
      });
      return list.items.find((e) => e.reason === "ImagePullBackOff" && e.type === "Warning");
    });
    assert.match(events.message, /Back-off pulling image/);

    // The scheduler's verdict replaces it; then a running pod makes it healthy.
    await writePodStatus(client, await client.get(PODS, ns.name, pod.metadata.name!), {
      phase: "Pending",
      conditions: [
        {
          type: "PodScheduled",
          status: "False",
          reason: "Unschedulable",
          message: "0/1 nodes are available: 1 Insufficient memory.",
        },
      ],
    });
    const unschedulable = await untilReason("pull", "RunnerHealthy", "False", "Unschedulable");
    assert.match(
      condition(unschedulable, "RunnerHealthy")!.message,
      /\(shard 0\): 0\/1 nodes are available: 1 Insufficient memory\./,
    );
    await writePodStatus(client, await client.get(PODS, ns.name, pod.metadata.name!), {
      phase: "Running",
      containerStatuses: [
        containerStatus(image, { running: { startedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z") } }),
      ],
    });
    await untilReason("pull", "RunnerHealthy", "True", "PodsHealthy");
  });

  test("an OOM-killed runner: RunnerHealthy=False/OOMKilled until its replacement runs", async () => {
    await createCrawlJob(client, ns.name, "oom", spec());
    const job = await runnerJobOf("oom");
    await jobPending(job);
    const pod = await createJobPod(client, job, 0);
    const image = job.spec.template.spec.containers[0].image;
    await writePodStatus(client, pod, {
      phase: "Failed",
      containerStatuses: [containerStatus(image, { terminated: { exitCode: 137, reason: "OOMKilled" } })],
    });
    const seen = await untilReason("oom", "RunnerHealthy", "False", "OOMKilled");
    assert.match(
      condition(seen, "RunnerHealthy")!.message,
      new RegExp(`Pod ${pod.metadata.name} \\(shard 0\\): .*out of memory`),
    );
  });

  test("exit 2 (the real feedcrawl run without its spec file): the Job fails at once, CrawlJob Failed/RunnerConfigError", async () => {
    await createCrawlJob(client, ns.name, "config", spec({ backoffLimit: 3 }));
    await runnerJobOf("config");
    const played = await playJob({
      admin: kc,
      namespace: ns.name,
      jobName: "config-runner",
      workDir,
      execute: async (pod) => {
        rmSync(pod.env.FEEDCRAWL_SPEC!); // the mounted snapshot is not there: a configuration error
        return spawnRunner(pod);
      },
    });
    assert.deepEqual(played.exitCodes, { 0: [2] }, "one attempt: FailJob, no retries within backoffLimit 3");
    const failed = await untilReason("config", "CrawlComplete", "False", "RunnerConfigError");
    const message = condition(failed, "CrawlComplete")!.message;
    assert.match(
      message,
      /^Pod config-runner-0-\w+ \(shard 0\): exit 2, a configuration error: Runner configuration is invalid: FEEDCRAWL_SPEC .*crawljob\.json: ENOENT/,
    );
    assert.equal(failed.status?.phase, "Failed");
    assert.equal(condition(failed, "Succeeded")?.status, "False");
    assert.equal(condition(failed, "Succeeded")?.reason, "RunnerFailed");
    assert.match(condition(failed, "Succeeded")!.message, /RunnerConfigError/);
    assert.equal(condition(failed, "RunnerHealthy")?.reason, "RunnerConfigError");
    const job = await client.get<Any & KubeObject>(JOBS, ns.name, "config-runner");
    assert.equal(job.status.conditions.find((c: Any) => c.type === "Failed")?.reason, "PodFailurePolicy");
  });

  test("no secret value reaches a status, Event or the operator's log", async () => {
    const jobs = await client.list(JOBS, { namespace: ns.name });
    const events = await client.list(EVENTS, { namespace: ns.name });
    const { readFileSync } = await import("node:fs");
    for (const text of [JSON.stringify(jobs), JSON.stringify(events), readFileSync(operator.logPath, "utf8")]) {
      assert.ok(!text.includes("site-token-value-never-in-status"));
      assert.ok(!text.includes(PROXY_PASSWORD));
    }
    const tuned = await readCrawlJob(client, ns.name, "tuned");
    assert.ok(!JSON.stringify(tuned.status).includes("site-token"));
  });
});
