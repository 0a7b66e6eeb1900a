// The SSRF guard: the address table, and that refused addresses never get a
// socket (checked through net's diagnostics channel), including names that
// resolve to a refused address (the rebinding case). IPv4-in-IPv6 forms are
// written in hex, as URL parsers and resolvers hand them over: a dotted
// `::ffff:1.2.3.4` test would pass even if only the mapped form were handled.
import assert from "node:assert/strict";
import diagnostics from "node:diagnostics_channel";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { request } from "undici";
import {
  AddressBlockedError,
  createGuardedAgent,
  guardedLookup,
  isAddressAllowed,
  parseCidrs,
  type ResolveAll,
} from "../../net/address-guard.ts";

/** Teredo address whose client field is `ipv4` obfuscated (XOR 0xffffffff), server 65.54.227.120. */
function teredo(ipv4: string): string {
  const n = ipv4.split(".").reduce((acc, o) => acc * 256 + Number(o), 0) ^ 0xffffffff;
  const hex = (n >>> 0).toString(16).padStart(8, "0");
  return `2001:0:4136:e378:8000:63bf:${hex.slice(0, 4)}:${hex.slice(4)}`;
}

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
  // IPv4 hidden in IPv6: each form is classified by the IPv4 it reaches.
  const embedded: [string, string][] = [
    ["::a9fe:a9fe", "IPv4-compatible 169.254.169.254 (what [::169.254.169.254] parses to)"],
    ["::7f00:1", "IPv4-compatible 127.0.0.1"],
    ["::a00:1", "IPv4-compatible 10.0.0.1"],
    ["::ffff:a9fe:a9fe", "IPv4-mapped 169.254.169.254"],
    ["::ffff:0:7f00:1", "IPv4-translated (RFC 6145) 127.0.0.1"],
    ["64:ff9b::7f00:1", "NAT64 127.0.0.1"],
    ["64:ff9b:1::a9fe:a9fe", "local-use NAT64 /96 169.254.169.254"],
    ["64:ff9b:1:a9fe:a9:fe00::", "local-use NAT64 /48 layout: offset unknowable, refused"],
    ["2002:a9fe:a9fe::1", "6to4 169.254.169.254"],
    ["2002:7f00:1::1", "6to4 127.0.0.1"],
    [teredo("127.0.0.1"), "Teredo, client 127.0.0.1"],
    [teredo("8.8.8.8"), "Teredo, client 8.8.8.8: a tunnel is never a public server"],
  ];
  for (const [ip, what] of embedded) {
    test(`refuses ${ip} (${what})`, () => {
      assert.equal(isAddressAllowed(ip, false), false);
      assert.equal(isAddressAllowed(`[${ip}]`, undefined), false);
    });
  }
  test("the URL parser turns [::169.254.169.254] into the hex form, which is refused", () => {
    const host = new URL("http://[::169.254.169.254]/latest/meta-data/").hostname;
    assert.equal(host, "[::a9fe:a9fe]");
    assert.equal(isAddressAllowed(host, false), false);
    assert.equal(teredo("127.0.0.1"), "2001:0:4136:e378:8000:63bf:80ff:fffe");
  });
  for (const ip of ["::808:808", "64:ff9b::808:808", "64:ff9b:1::808:808", "2002:808:808::1", "::ffff:808:808"]) {
    test(`allows ${ip}, which embeds the public 8.8.8.8`, () => assert.equal(isAddressAllowed(ip, false), true));
  }
  test("an IPv4 CIDR allows its embedded forms; an IPv6 CIDR allows what it lists", () => {
    assert.equal(isAddressAllowed("::7f00:1", ["127.0.0.0/8"]), true);
    assert.equal(isAddressAllowed("64:ff9b::7f00:1", ["127.0.0.0/8"]), true);
    assert.equal(isAddressAllowed("::a9fe:a9fe", ["127.0.0.0/8"]), false);
    assert.equal(isAddressAllowed(teredo("127.0.0.1"), ["127.0.0.0/8"]), false);
    assert.equal(isAddressAllowed("64:ff9b:1:a9fe:a9:fe00::", ["64:ff9b:1::/48"]), true);
  });
  test("the refusal names the IPv4 an IPv6 address stands for", () => {
    assert.match(
      new AddressBlockedError("metadata.test", "::a9fe:a9fe").message,
      /^Address ::a9fe:a9fe \(IPv4 169\.254\.169\.254, host metadata\.test\) is not a public address/,
    );
  });
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

/** A resolver that answers from a table (a name missing from it is ENOTFOUND). */
function stubResolver(table: Record<string, string[]>): ResolveAll {
  return (hostname, _options, callback) => {
    const answers = table[hostname];
    if (!answers)
      return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" }), []);
    callback(
      null,
      answers.map((address) => ({ address, family: address.includes(":") ? 6 : 4 })),
    );
  };
}

const hostileNames: Record<string, string[]> = {
  "compat-metadata.test": ["::a9fe:a9fe"],
  "compat-loopback.test": ["::7f00:1"],
  "nat64-loopback.test": ["64:ff9b::7f00:1"],
  "sixtofour-metadata.test": ["2002:a9fe:a9fe::1"],
  "teredo-loopback.test": [teredo("127.0.0.1")],
  "mixed.test": ["8.8.8.8", "::a9fe:a9fe"],
};

describe("guardedLookup on DNS answers", () => {
  const lookup = guardedLookup(false, stubResolver({ ...hostileNames, "public.test": ["8.8.8.8", "::808:808"] }));
  const resolveWith = (name: string, all: boolean) =>
    new Promise<{ err: Error | null; result: unknown }>((resolve) =>
      lookup(name, { all }, ((err: Error | null, result: unknown) => resolve({ err, result })) as never),
    );

  for (const [name, [first, ...rest]] of Object.entries(hostileNames)) {
    test(`refuses ${name} -> ${[first, ...rest].join(", ")}`, async () => {
      const { err } = await resolveWith(name, false);
      assert.ok(err instanceof AddressBlockedError, String(err));
      assert.equal(err.hostname, name);
      assert.equal(err.address, name === "mixed.test" ? "::a9fe:a9fe" : first);
    });
  }
  test("passes a name whose every answer is public", async () => {
    assert.deepEqual(await resolveWith("public.test", false), { err: null, result: "8.8.8.8" });
    const all = await resolveWith("public.test", true);
    assert.equal(all.err, null);
    assert.equal((all.result as unknown[]).length, 2);
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

  test("refuses IPv4-in-IPv6 literals in URLs before any socket exists", async () => {
    const agent = createGuardedAgent(["127.0.0.0/8"]);
    const before = socketsOpened.length;
    try {
      for (const host of [
        "[::169.254.169.254]",
        "[::a9fe:a9fe]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:a9fe:a9fe::1]",
        `[${teredo("127.0.0.1")}]`,
      ]) {
        await assert.rejects(request(`http://${host}:${port}/`, { dispatcher: agent }), (err: unknown) => {
          const e = err as Error;
          const blocked = e instanceof AddressBlockedError ? e : (e.cause as AddressBlockedError);
          assert.ok(blocked instanceof AddressBlockedError, `${host}: ${String(e)}`);
          return true;
        });
      }
      assert.equal(socketsOpened.length, before, "no socket may be created for a refused address");
    } finally {
      await agent.close();
    }
  });

  test("refuses names whose DNS answers hide a refused IPv4, with no connection", async () => {
    const resolve = stubResolver({ ...hostileNames, "loopback.test": ["127.0.0.1"] });
    const agent = createGuardedAgent(false, { resolve });
    const control = createGuardedAgent(["127.0.0.0/8"], { resolve });
    const before = connections;
    try {
      for (const name of Object.keys(hostileNames)) {
        await assert.rejects(request(`http://${name}:${port}/`, { dispatcher: agent }), (err: unknown) => {
          const e = err as Error;
          const blocked = e instanceof AddressBlockedError ? e : (e.cause as AddressBlockedError);
          assert.ok(blocked instanceof AddressBlockedError, `${name}: ${String(e)}`);
          assert.equal(blocked.hostname, name);
          return true;
        });
      }
      assert.equal(connections, before, "the server must not see a connection");
      // Positive control: the stub is what the connector resolves with.
      const res = await request(`http://loopback.test:${port}/`, { dispatcher: control });
      assert.equal(await res.body.text(), "hello");
      assert.equal(connections, before + 1);
    } finally {
      await agent.close();
      await control.close();
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
