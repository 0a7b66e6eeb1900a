// Smoke: kube-controller-manager runs its garbage collector and namespace
// controller (and nothing else: no Job controller, no kubelet).
import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiException, CoreV1Api } from "@kubernetes/client-node";
import { adminKubeConfig } from "../platform/env.ts";
import { createNamespace, eventually, uniqueName } from "../platform/fixtures.ts";

const gone = (err: unknown) => err instanceof ApiException && err.code === 404;

test("the garbage collector deletes a dependent whose owner is deleted", async () => {
  await using ns = await createNamespace("smoke-gc");
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  const owner = await core.createNamespacedConfigMap({ namespace: ns.name, body: { metadata: { name: "owner" } } });
  await core.createNamespacedConfigMap({
    namespace: ns.name,
    body: {
      metadata: {
        name: "dependent",
        ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: owner.metadata!.uid! }],
      },
    },
  });
  await core.deleteNamespacedConfigMap({ namespace: ns.name, name: "owner" });
  await eventually("the dependent to be garbage collected", () =>
    core.readNamespacedConfigMap({ namespace: ns.name, name: "dependent" }).then(
      () => false,
      (err) => gone(err),
    ),
  );
});

test("a deleted namespace is emptied and goes away", async () => {
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  const name = uniqueName("smoke-ns");
  await core.createNamespace({ body: { metadata: { name } } });
  await core.createNamespacedConfigMap({ namespace: name, body: { metadata: { name: "content" } } });
  await core.deleteNamespace({ name });
  await eventually("the namespace to be finalized and removed", () =>
    core.readNamespace({ name }).then(
      () => false,
      (err) => gone(err),
    ),
  );
  assert.ok(true);
});
