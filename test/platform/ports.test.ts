// Free ports are distinct and bindable; a start that lost its port to a race is retried.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";
import { freePort, freePorts, retryOnPortClash } from "./ports.ts";

test("freePorts returns distinct ports that can be bound on 127.0.0.1", async () => {
  const ports = await freePorts(3);
  assert.equal(new Set(ports).size, 3);
  const port = await freePort();
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  await new Promise((resolve) => server.close(resolve));
});

test("retryOnPortClash retries only 'address already in use' failures, up to the limit", async () => {
  let calls = 0;
  const value = await retryOnPortClash(async () => {
    calls++;
    if (calls < 3) throw new Error("etcd exited … listen tcp 127.0.0.1:4001: bind: address already in use");
    return "started";
  });
  assert.equal(value, "started");
  assert.equal(calls, 3);

  calls = 0;
  await assert.rejects(
    retryOnPortClash(async () => {
      calls++;
      throw new Error("bind: address already in use");
    }, 2),
    /address already in use/,
  );
  assert.equal(calls, 2);

  calls = 0;
  await assert.rejects(
    retryOnPortClash(async () => {
      calls++;
      throw new Error("some other failure");
    }),
    /some other failure/,
  );
  assert.equal(calls, 1);
});
