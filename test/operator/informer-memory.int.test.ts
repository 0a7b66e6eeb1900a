// Issue 13, item 6, on the real API server: the informer's cache holds no
// metadata.managedFields and no kubectl last-applied annotation, for listed
// objects and for watch events alike, while every other annotation, the
// labels and the data stay; and an informer transform still applies on top.
// The metadata is rebuilt, not deleted from: V8 keeps it a fast object
// (a `delete` turns it into a hash table, ~400 B more per cached object).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { pino } from "pino";
import { KubeClient, type KubeObject } from "../../kube/client.ts";
import { CONFIGMAPS } from "../../kube/resources.ts";
import { Informer, LAST_APPLIED_ANNOTATION } from "../../operator/runtime/informer.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually, kubectl } from "../platform/fixtures.ts";

type ConfigMap = KubeObject & { data?: Record<string, string> };

setFlagsFromString("--allow-natives-syntax");
const hasFastProperties = new Function("o", "return %HasFastProperties(o)") as (o: object) => boolean;

describe("informer memory: what no controller reads is not cached", () => {
  const client = new KubeClient(adminKubeConfig());
  let ns: Disposable;

  before(async () => {
    ns = await createNamespace("op-informer-mem");
  });
  after(async () => {
    await ns?.cleanup();
    await client.close();
  });

  /** A ConfigMap made with client-side `kubectl apply`: managedFields plus the last-applied annotation. */
  const apply = (name: string, value: string) =>
    kubectl(["apply", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name, namespace: ns.name, labels: { app: "mem" }, annotations: { keep: "me" } },
        data: { value },
      }),
    });

  const assertLean = (obj: ConfigMap | undefined, value: string) => {
    assert.ok(obj, "cached");
    assert.equal(obj.metadata.managedFields, undefined, "managedFields are not cached");
    assert.equal(obj.metadata.annotations?.[LAST_APPLIED_ANNOTATION], undefined, "last-applied is not cached");
    assert.deepEqual(obj.metadata.annotations, { keep: "me" });
    assert.deepEqual(obj.metadata.labels, { app: "mem" });
    assert.equal(obj.data?.value, value);
    assert.ok(hasFastProperties(obj.metadata), "the cached metadata is not a dictionary-mode object");
  };

  test("listed and watched objects lose managedFields and last-applied; the rest and a transform stay", async () => {
    await apply("listed", "1");
    // The API server does send both: the cache is where they go away.
    const raw = await client.get<ConfigMap>(CONFIGMAPS, ns.name, "listed");
    assert.ok(Array.isArray(raw.metadata.managedFields) && raw.metadata.managedFields.length > 0);
    assert.ok(raw.metadata.annotations?.[LAST_APPLIED_ANNOTATION]);

    const informer = new Informer<ConfigMap>({
      client,
      resource: CONFIGMAPS,
      namespace: ns.name,
      logger: pino({ level: "silent" }),
      resyncMs: 0,
      transform: (cm) => ({ ...cm, data: { value: `seen ${cm.data?.value}` } }),
    });
    const handed: ConfigMap[] = [];
    informer.on("add", (o) => handed.push(o)).on("update", (o) => handed.push(o));
    try {
      await informer.start();
      assertLean(informer.get(ns.name, "listed"), "seen 1");
      await apply("watched", "2");
      await apply("listed", "3");
      await eventually(
        "the watch events",
        () => informer.get(ns.name, "watched") && informer.get(ns.name, "listed")?.data?.value === "seen 3",
      );
      assertLean(informer.get(ns.name, "watched"), "seen 2");
      assertLean(informer.get(ns.name, "listed"), "seen 3");
      for (const o of handed) assert.equal(o.metadata.managedFields, undefined, "handlers get the lean object too");
    } finally {
      await informer.stop();
    }
  });
});
