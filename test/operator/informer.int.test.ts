// The informer on the real API server: list-then-watch delivers
// adds/updates/deletes to the handlers and the cache; resync re-delivers.
// A silent stream is declared stalled and relisted. (Reconnects after an
// apiserver restart: apiserver-restart.int.test.ts.)
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import { CONFIGMAPS } from "../../kube/resources.ts";
import { informerRelists } from "../../operator/metrics.ts";
import { Informer } from "../../operator/runtime/informer.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually } from "../platform/fixtures.ts";

describe("informer on the real API server", () => {
  const client = new KubeClient(adminKubeConfig());
  let ns: Disposable;

  before(async () => {
    ns = await createNamespace("op-informer");
  });
  after(async () => {
    await ns?.cleanup();
    await client.close();
  });

  const configMap = (name: string, value: string): KubeObject =>
    ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: ns.name }, data: { value } }) as KubeObject;

  test("list-then-watch: adds, updates and deletes reach the handlers and the cache", async () => {
    await client.create(CONFIGMAPS, configMap("existing", "1"));
    const seen: string[] = [];
    const informer = new Informer<KubeObject & { data?: Record<string, string> }>({
      client,
      resource: CONFIGMAPS,
      namespace: ns.name,
      logger: pino({ level: "silent" }),
      resyncMs: 0,
    });
    informer
      .on("add", (o) => seen.push(`add ${o.metadata.name}`))
      .on("update", (o) => seen.push(`update ${o.metadata.name} ${o.data?.value}`))
      .on("delete", (o) => seen.push(`delete ${o.metadata.name}`));
    try {
      await informer.start();
      assert.ok(informer.hasSynced);
      assert.ok(seen.includes("add existing"), "listed objects are added");
      await client.create(CONFIGMAPS, configMap("fresh", "1"));
      await client.patch(CONFIGMAPS, ns.name, "fresh", { data: { value: "2" } });
      await client.delete(CONFIGMAPS, ns.name, "existing");
      await eventually("the watch events", () =>
        ["add fresh", "update fresh 2", "delete existing"].every((e) => seen.includes(e)),
      );
      assert.equal(informer.get(ns.name, "fresh")?.data?.value, "2");
      assert.equal(informer.get(ns.name, "existing"), undefined);
      const before = seen.length;
      informer.resync();
      assert.ok(
        seen.slice(before).some((e) => e.startsWith("update fresh")),
        "resync re-delivers cached objects",
      );
    } finally {
      await informer.stop();
    }
  });

  test("a watch silent for longer than stallMs is declared stalled, relisted, and keeps working", async () => {
    const seen: string[] = [];
    const informer = new Informer<KubeObject>({
      client,
      resource: CONFIGMAPS,
      namespace: ns.name,
      labelSelector: "stall-test=yes",
      logger: pino({ level: "silent" }),
      resyncMs: 0,
      stallMs: 1500,
    });
    informer.on("add", (o) => seen.push(`add ${o.metadata.name}`));
    const stalls = async () =>
      (await informerRelists.get()).values.find((v) => v.labels.resource === "configmaps" && v.labels.cause === "stall")
        ?.value ?? 0;
    const before = await stalls();
    try {
      await informer.start();
      await eventually("a stall relist", async () => (await stalls()) > before, 15_000);
      const cm = configMap("after-stall", "1");
      cm.metadata.labels = { "stall-test": "yes" };
      await client.create(CONFIGMAPS, cm);
      await eventually("the add after the stall", () => seen.includes("add after-stall"));
    } finally {
      await informer.stop();
    }
  });
});
