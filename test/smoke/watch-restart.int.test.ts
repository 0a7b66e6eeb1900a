// Smoke: a client-node informer (list, then watch) on a private apiserver
// survives that apiserver being stopped and started again: the watch breaks,
// the informer is restarted on its `error` event (client-node's informer stops
// on any error but 410), relists/rewatches, and sees a change made after the
// restart.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CoreV1Api, makeInformer, type V1ConfigMap } from "@kubernetes/client-node";
import { eventually, startOwnControlPlane } from "../platform/fixtures.ts";

test("an informer relists and sees a change made after an apiserver restart", async () => {
  await using plane = await startOwnControlPlane("watch-restart");
  const core = plane.kubeConfig().makeApiClient(CoreV1Api);
  const namespace = "watched";
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: "cm" }, data: { v: "1" } } });

  const informer = makeInformer<V1ConfigMap>(plane.kubeConfig(), `/api/v1/namespaces/${namespace}/configmaps`, () =>
    core.listNamespacedConfigMap({ namespace }),
  );
  const seen: string[] = [];
  let errors = 0;
  let connects = 0;
  let stopped = false;
  informer.on("add", (cm) => seen.push(`add:${cm.data?.v}`));
  informer.on("update", (cm) => seen.push(`update:${cm.data?.v}`));
  informer.on("connect", () => connects++);
  informer.on("error", () => {
    errors++;
    // What an operator must do too: restart after a short pause.
    if (!stopped) setTimeout(() => void informer.start().catch(() => {}), 300);
  });
  try {
    await informer.start();
    await eventually("the informer to list cm with v=1", () => informer.get("cm", namespace)?.data?.v === "1");

    await plane.apiserver.stop();
    await eventually("the informer to notice the apiserver is gone", () => errors > 0, 60_000);
    const connectsBefore = connects;
    await plane.apiserver.start();

    await core.replaceNamespacedConfigMap({
      namespace,
      name: "cm",
      body: { metadata: { name: "cm" }, data: { v: "2" } },
    });
    await eventually(
      "the informer to see v=2 after the restart",
      () => informer.get("cm", namespace)?.data?.v === "2",
      60_000,
    );
    assert.ok(connects > connectsBefore, "the informer connected again after the restart");
    assert.deepEqual(seen.at(0), "add:1");
    assert.ok(seen.includes("update:2"), `events seen: ${seen.join(", ")}`);
  } finally {
    stopped = true;
    await informer.stop();
  }
});
