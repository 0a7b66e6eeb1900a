// The admission filters, in their order, with the reason each refusal is counted under.
import assert from "node:assert/strict";
import { test } from "node:test";
import { addressChecker } from "../../net/address-guard.ts";
import { AdmissionFilter, type AdmissionOptions } from "../../runner/admission.ts";
import { newRequest } from "../../runner/request.ts";
import { shardForHost } from "../../runner/shard.ts";

const filter = (o: Partial<AdmissionOptions> = {}) =>
  new AdmissionFilter({
    depthLimit: 0,
    shard: { index: 0, count: 1 },
    addressAllowed: addressChecker(false),
    ...o,
  });
const reason = (f: AdmissionFilter, url: string, extra: Parameters<typeof newRequest>[2] = {}, depth = 0) => {
  const v = f.admit(newRequest(url, depth, extra));
  return v.ok ? "ok" : v.reason;
};

test("only parseable http(s) URLs pass", () => {
  const f = filter();
  assert.equal(reason(f, "not a url"), "invalidUrl");
  assert.equal(reason(f, "ftp://example.com/file"), "notHttp");
  assert.equal(reason(f, "mailto:x@example.com"), "notHttp");
  assert.equal(reason(f, "https://example.com/"), "ok");
});

test("depthLimit counts link hops from the start URLs (0: no limit)", () => {
  assert.equal(reason(filter({ depthLimit: 2 }), "http://a.example/2", {}, 2), "ok");
  assert.equal(reason(filter({ depthLimit: 2 }), "http://a.example/3", {}, 3), "depthLimit");
  assert.equal(reason(filter(), "http://a.example/deep", {}, 9999), "ok");
});

test("allowedDomains admits the domain and its subdomains only", () => {
  const f = filter({ allowedDomains: ["books.example"] });
  assert.equal(reason(f, "http://books.example/"), "ok");
  assert.equal(reason(f, "http://www.books.example/"), "ok");
  assert.equal(reason(f, "http://notbooks.example/"), "offsite");
  assert.equal(reason(f, "http://books.example.evil.net/"), "offsite");
});

test("a shard admits only the hosts that hash to it", () => {
  const hosts = ["a.example", "b.example", "c.example", "d.example", "e.example"];
  for (const index of [0, 1]) {
    const f = filter({ shard: { index, count: 2 } });
    for (const h of hosts)
      assert.equal(reason(f, `http://${h}/`), shardForHost(h, 2) === index ? "ok" : "otherShard", `${h} on ${index}`);
  }
});

test("IP literals the guard refuses are dropped before any socket, with the address", () => {
  const f = filter();
  assert.deepEqual(f.admit(newRequest("http://169.254.169.254/latest/", 0)), {
    ok: false,
    reason: "privateAddress",
    address: "169.254.169.254",
  });
  assert.equal(reason(f, "http://[::1]:8080/"), "privateAddress");
  assert.equal(reason(f, "http://8.8.8.8/"), "ok");
  // Names are the guarded agent's job (it checks what they resolve to).
  assert.equal(reason(f, "http://localhost/"), "ok");
  assert.equal(reason(filter({ addressAllowed: addressChecker(["127.0.0.0/8"]) }), "http://127.0.0.1/"), "ok");
});

test("the duplicate filter: canonical URL + method + body; dontFilter passes; a redirect back is a loop", () => {
  const f = filter();
  assert.equal(reason(f, "http://a.example/p?b=2&a=1#top"), "ok");
  assert.equal(reason(f, "http://a.example/p?a=1&b=2"), "duplicate");
  assert.equal(reason(f, "http://a.example/p?a=1&b=2", { method: "POST", body: "x" }), "ok");
  assert.equal(reason(f, "http://a.example/p?a=1&b=2", { dontFilter: true }), "ok");
  assert.equal(
    reason(f, "http://a.example/p?a=1&b=2", { redirectChain: ["http://a.example/p?b=2&a=1"] }),
    "redirectLoop",
  );
});

test("a refused request leaves no fingerprint behind", () => {
  const f = filter({ depthLimit: 1 });
  assert.equal(reason(f, "http://a.example/x", {}, 2), "depthLimit");
  assert.equal(reason(f, "http://a.example/x", {}, 1), "ok");
});
