// The SSRF guard: the address table, and that refused addresses never get a
// socket (checked through net's diagnostics channel), including names that
// resolve to a refused address (the rebinding case).
import assert from "node:assert/strict";
import diagnostics from "node:diagnostics_channel";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { request } from "undici";
import { AddressBlockedError, createGuardedAgent, isAddressAllowed, parseCidrs } from "../../net/address-guard.ts";

describe("isAddressAllowed", () => {
  const refusedByDefault = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "100.64.0.1",
    "100.127.255.254",
    "169.254.169.254",
    "169.254.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",
    "::1",
    "::",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe", // NAT64 form of 169.254.169.254
    "2002:a00:1::1", // 6to4 form of 10.0.0.1
    "not-an-ip",
  ];
  for (const ip of refusedByDefault) {
    test(`refuses ${ip} by default`, () => {
      assert.equal(isAddressAllowed(ip, false), false);
      assert.equal(isAddressAllowed(ip, undefined), false);
    });
  }
  for (const ip of ["93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"]) {
    test(`allows public ${ip}`, () => assert.equal(isAddressAllowed(ip, false), true));
  }
  test("true allows everything that parses", () => {
    assert.equal(isAddressAllowed("127.0.0.1", true), true);
    assert.equal(isAddressAllowed("169.254.169.254", true), true);
  });
  test("a CIDR list allows exactly those ranges on top of public addresses", () => {
    const setting = ["127.0.0.0/8", "fd00::/8"];
    assert.equal(isAddressAllowed("127.0.0.2", setting), true);
    assert.equal(isAddressAllowed("::ffff:127.0.0.1", setting), true);
    assert.equal(isAddressAllowed("fd00::5", setting), true);
    assert.equal(isAddressAllowed("10.0.0.1", setting), false);
    assert.equal(isAddressAllowed("169.254.169.254", setting), false);
    assert.equal(isAddressAllowed("8.8.8.8", setting), true);
  });
  test("a bad CIDR is an error that names it", () => {
    assert.throws(() => parseCidrs(["10.0.0.0/33"]), /10\.0\.0\.0\/33/);
  });
});

describe("createGuardedAgent", () => {
  let server: http.Server;
  let port = 0;
  let connections = 0;
  const socketsOpened: string[] = [];
  const onSocket = (msg: unknown) => {
    const s = (msg as { socket: import("node:net").Socket }).socket;
    socketsOpened.push(`${(s as unknown as { _host?: string })._host ?? "?"}`);
  };

  before(async () => {
    server = http.createServer((_req, res) => res.end("hello"));
    server.on("connection", () => connections++);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
    diagnostics.subscribe("net.client.socket", onSocket);
  });
  after(async () => {
    diagnostics.unsubscribe("net.client.socket", onSocket);
    await new Promise<void>((r) => server.close(() => r()));
  });

  test("refuses the metadata address before any socket exists, naming the address", async () => {
    const agent = createGuardedAgent(["127.0.0.0/8"]);
    const before = socketsOpened.length;
    try {
      await assert.rejects(
        request("http://169.254.169.254/latest/meta-data/", { dispatcher: agent }),
        (err: unknown) => {
          const e = err as Error;
          assert.ok(e instanceof AddressBlockedError || (e.cause as Error) instanceof AddressBlockedError, String(e));
          assert.match(e.message, /169\.254\.169\.254/);
          return true;
        },
      );
      await assert.rejects(request("http://10.255.255.1/", { dispatcher: agent }), /10\.255\.255\.1/);
      await assert.rejects(request("http://[::ffff:a9fe:a9fe]/", { dispatcher: agent }), /not a public address/);
      assert.equal(socketsOpened.length, before, "no socket may be created for a refused address");
    } finally {
      await agent.close();
    }
  });

  test("refuses a name that resolves to a refused address (checked at lookup, no connection)", async () => {
    const agent = createGuardedAgent(false);
    const before = connections;
    try {
      await assert.rejects(request(`http://localhost:${port}/`, { dispatcher: agent }), (err: unknown) => {
        const e = err as Error;
        const blocked = e instanceof AddressBlockedError ? e : (e.cause as AddressBlockedError);
        assert.ok(blocked instanceof AddressBlockedError, String(e));
        assert.equal(blocked.hostname, "localhost");
        assert.match(blocked.address, /^(127\.0\.0\.1|::1)$/);
        return true;
      });
      assert.equal(connections, before, "the server must not see a connection");
    } finally {
      await agent.close();
    }
  });

  test("connects when the CIDR list allows the address", async () => {
    const agent = createGuardedAgent(["127.0.0.0/8"]);
    const before = socketsOpened.length;
    try {
      const res = await request(`http://127.0.0.1:${port}/`, { dispatcher: agent });
      assert.equal(await res.body.text(), "hello");
      // Positive control for the "no socket" assertions above: the channel does report sockets.
      assert.ok(socketsOpened.length > before, "net.client.socket reports the allowed connection");
      const byName = await request(`http://localhost:${port}/`, { dispatcher: agent }).catch((e: Error) => e);
      // localhost may resolve to ::1 as well, which the list does not allow: either outcome names it.
      if (byName instanceof Error)
        assert.match(byName.message + String(byName.cause), /::1|not a public address|ECONNREFUSED/);
      else assert.equal(await byName.body.text(), "hello");
    } finally {
      await agent.close();
    }
  });
});
