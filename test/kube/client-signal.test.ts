// KubeClient's per-request signal against a local HTTP server that never
// answers: a caller's signal ends a request (each method that sends one passes it
// on), and the 30 s request timeout still applies next to a caller's signal
// that never fires (AbortSignal.timeout is shortened here, not the client).
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { KubeClient } from "../../kube/client.ts";
import type { KubeAuth } from "../../kube/kubeconfig.ts";
import { CONFIGMAPS } from "../../kube/resources.ts";

/** A fake apiserver that reads each request and never answers it. */
async function hangingServer(): Promise<{ server: Server; auth: KubeAuth; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const auth: KubeAuth = {
    getCurrentCluster: () => ({ name: "hang", server: url }),
    applyToHTTPSOptions: async () => {},
  };
  return { server, auth, requests };
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

const configMap = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm", namespace: "ns" } };

describe("KubeClient request signal", () => {
  let hang: Awaited<ReturnType<typeof hangingServer>>;
  let client: KubeClient;

  before(async () => {
    hang = await hangingServer();
    client = new KubeClient(hang.auth);
  });

  after(async () => {
    await closeServer(hang.server); // first: a request still hanging (a failed test) must not hold up client.close()
    await client.close();
  });

  const calls: [string, (signal: AbortSignal) => Promise<unknown>][] = [
    ["get", (signal) => client.get(CONFIGMAPS, "ns", "cm", { signal })],
    ["getOrUndefined", (signal) => client.getOrUndefined(CONFIGMAPS, "ns", "cm", { signal })],
    ["list", (signal) => client.list(CONFIGMAPS, { namespace: "ns", signal })],
    ["listAll", (signal) => client.listAll(CONFIGMAPS, { namespace: "ns", signal })],
    ["create", (signal) => client.create(CONFIGMAPS, configMap, { signal })],
    ["update", (signal) => client.update(CONFIGMAPS, configMap, undefined, { signal })],
    ["updateStatus", (signal) => client.updateStatus(CONFIGMAPS, configMap, { signal })],
    ["patch", (signal) => client.patch(CONFIGMAPS, "ns", "cm", { data: {} }, { signal })],
    ["delete", (signal) => client.delete(CONFIGMAPS, "ns", "cm", { signal })],
  ];
  for (const [method, call] of calls) {
    it(`${method} ends with the caller's abort reason while the server never answers`, { timeout: 5_000 }, async () => {
      const seen = hang.requests.length;
      const ac = new AbortController();
      const pending = call(ac.signal);
      while (hang.requests.length === seen) await new Promise((resolve) => setTimeout(resolve, 5));
      const reason = new Error(`Reconcile aborted during ${method}`);
      ac.abort(reason);
      const started = Date.now();
      await assert.rejects(pending, (err) => err === reason);
      assert.ok(Date.now() - started < 1_000, "the abort ended the request at once");
    });
  }

  it("still times out when the caller's signal never fires", { timeout: 10_000 }, async (t) => {
    const timeout = AbortSignal.timeout;
    const asked: number[] = [];
    // The client's 30 s, scaled down to 200 ms so the test is short.
    t.mock.method(AbortSignal, "timeout", (ms: number) => {
      asked.push(ms);
      return timeout.call(AbortSignal, ms / 150);
    });
    const started = Date.now();
    await assert.rejects(
      client.get(CONFIGMAPS, "ns", "cm", { signal: new AbortController().signal }),
      (err: Error) => err.name === "TimeoutError",
    );
    assert.deepEqual(asked, [30_000]);
    assert.ok(Date.now() - started < 5_000);
  });
});
