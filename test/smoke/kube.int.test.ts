// Smoke: the test apiserver is a real one. A CRD applied with the kubectl
// built here serves custom objects that @kubernetes/client-node reads back,
// and RBAC is enforced for a ServiceAccount token minted with TokenRequest.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  ApiException,
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { adminKubeConfig, platform } from "../platform/env.ts";
import { createNamespace, type Disposable, kubectl } from "../platform/fixtures.ts";

const group = "smoke.feedcrawl.test";
const version = "v1";
const plural = "widgets";
const crdName = `${plural}.${group}`;
const crd = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ${crdName}
spec:
  group: ${group}
  scope: Namespaced
  names: { plural: ${plural}, singular: widget, kind: Widget }
  versions:
    - name: ${version}
      served: true
      storage: true
      subresources: { status: {} }
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties: { size: { type: integer, minimum: 1 } }
            status:
              type: object
              properties: { phase: { type: string } }
`;

let ns: Disposable;
before(async () => {
  await kubectl(["apply", "-f", "-"], { input: crd });
  await kubectl(["wait", "--for=condition=Established", `crd/${crdName}`, "--timeout=60s"]);
  ns = await createNamespace("smoke-kube");
});
after(async () => {
  await ns?.cleanup();
  await kubectl(["delete", `crd/${crdName}`, "--ignore-not-found", "--wait=false"]);
});

test("the built kubectl talks to kube-apiserver v1.36", async () => {
  const out = JSON.parse(await kubectl(["version", "-o", "json"]));
  assert.match(out.clientVersion.gitVersion, /^v1\.36\.\d+$/);
  assert.match(out.serverVersion.gitVersion, /^v1\.36\.\d+$/);
});

test("a custom object applied with kubectl reads back through client-node", async () => {
  const widget = `{"apiVersion":"${group}/${version}","kind":"Widget","metadata":{"name":"applied"},"spec":{"size":3}}`;
  await kubectl(["apply", "-n", ns.name, "-f", "-"], { input: widget });
  const api = adminKubeConfig().makeApiClient(CustomObjectsApi);
  const got = (await api.getNamespacedCustomObject({
    group,
    version,
    namespace: ns.name,
    plural,
    name: "applied",
  })) as {
    spec: { size: number };
    metadata: { uid: string };
  };
  assert.equal(got.spec.size, 3);
  assert.ok(got.metadata.uid);
  // The CRD's schema is enforced by the server.
  await assert.rejects(
    api.createNamespacedCustomObject({
      group,
      version,
      namespace: ns.name,
      plural,
      body: { apiVersion: `${group}/${version}`, kind: "Widget", metadata: { name: "bad" }, spec: { size: 0 } },
    }),
    (err: unknown) => err instanceof ApiException && err.code === 422,
  );
});

test("a TokenRequest token may patch the status of the one object its Role names, and is forbidden on another", async () => {
  const admin = adminKubeConfig();
  const custom = admin.makeApiClient(CustomObjectsApi);
  const core = admin.makeApiClient(CoreV1Api);
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  const namespace = ns.name;
  for (const name of ["mine", "other"]) {
    await custom.createNamespacedCustomObject({
      group,
      version,
      namespace,
      plural,
      body: { apiVersion: `${group}/${version}`, kind: "Widget", metadata: { name }, spec: { size: 1 } },
    });
  }
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: "status-writer" } } });
  await rbac.createNamespacedRole({
    namespace,
    body: {
      metadata: { name: "status-writer" },
      rules: [{ apiGroups: [group], resources: ["widgets/status"], resourceNames: ["mine"], verbs: ["get", "patch"] }],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: "status-writer" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "status-writer" },
      subjects: [{ kind: "ServiceAccount", name: "status-writer", namespace }],
    },
  });
  const minted = await core.createNamespacedServiceAccountToken({
    namespace,
    name: "status-writer",
    body: { spec: { audiences: [], expirationSeconds: 600 } },
  });
  const token = minted.status?.token;
  assert.ok(token, "TokenRequest returned a token");

  const asSa = new KubeConfig();
  asSa.loadFromOptions({
    clusters: [{ name: "test", server: platform().apiServerUrl, caFile: platform().caFile, skipTLSVerify: false }],
    users: [{ name: "status-writer", token }],
    contexts: [{ name: "test", cluster: "test", user: "status-writer" }],
    currentContext: "test",
  });
  const review = await asSa.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
  assert.equal(review.status?.userInfo?.username, `system:serviceaccount:${namespace}:status-writer`);

  const saCustom = asSa.makeApiClient(CustomObjectsApi);
  const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  await saCustom.patchNamespacedCustomObjectStatus(
    { group, version, namespace, plural, name: "mine", body: { status: { phase: "Patched" } } },
    mergePatch,
  );
  const mine = (await custom.getNamespacedCustomObject({ group, version, namespace, plural, name: "mine" })) as {
    status?: { phase?: string };
  };
  assert.equal(mine.status?.phase, "Patched");

  await assert.rejects(
    saCustom.patchNamespacedCustomObjectStatus(
      { group, version, namespace, plural, name: "other", body: { status: { phase: "Patched" } } },
      mergePatch,
    ),
    (err: unknown) => err instanceof ApiException && err.code === 403,
  );
  // Nor may it touch the object itself (only the status subresource).
  await assert.rejects(
    saCustom.patchNamespacedCustomObject(
      { group, version, namespace, plural, name: "mine", body: { spec: { size: 2 } } },
      mergePatch,
    ),
    (err: unknown) => err instanceof ApiException && err.code === 403,
  );
  const other = (await custom.getNamespacedCustomObject({ group, version, namespace, plural, name: "other" })) as {
    status?: unknown;
  };
  assert.equal(other.status, undefined);
});
