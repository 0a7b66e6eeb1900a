// Registrable domains (behind `restrict: sameDomain`) come from the Public
// Suffix List, private suffixes included; allowedDomains matching is Scrapy's.
import assert from "node:assert/strict";
import { test } from "node:test";
import { hostAllowed, registrableDomain } from "../../net/domains.ts";

const same = (a: string, b: string) => registrableDomain(a) === registrableDomain(b);

test("subdomains of one registrable domain are the same domain", () => {
  assert.equal(registrableDomain("news.abc.de"), "abc.de");
  assert.ok(same("news.abc.de", "shop.abc.de"));
  assert.ok(same("abc.de", "deep.er.abc.de"));
  assert.ok(!same("abc.de", "abd.de"));
});

test("sites under a private suffix (github.io) are different domains", () => {
  assert.equal(registrableDomain("alice.github.io"), "alice.github.io");
  assert.ok(!same("alice.github.io", "bob.github.io"));
  assert.ok(same("alice.github.io", "www.alice.github.io"));
});

test("multi-label public suffixes: co.uk", () => {
  assert.equal(registrableDomain("a.b.co.uk"), "b.co.uk");
  assert.ok(same("a.b.co.uk", "c.b.co.uk"));
  assert.ok(!same("x.co.uk", "y.co.uk"));
  // A bare public suffix has no registrable part: it stands for itself.
  assert.equal(registrableDomain("co.uk"), "co.uk");
});

test("IP literals map to themselves, with or without IPv6 brackets", () => {
  assert.equal(registrableDomain("127.0.0.1"), "127.0.0.1");
  assert.ok(!same("192.168.0.1", "192.168.0.2"));
  assert.equal(registrableDomain("[2001:db8::1]"), "2001:db8::1");
  assert.equal(registrableDomain("2001:db8::1"), "2001:db8::1");
  assert.ok(same("[::1]", "::1"));
  assert.ok(!same("[2001:db8::1]", "[2001:db8::2]"));
});

test("upper case and a trailing dot do not change the domain", () => {
  assert.equal(registrableDomain("News.ABC.de."), "abc.de");
  assert.ok(same("SHOP.abc.DE", "news.abc.de."));
  assert.equal(registrableDomain("localhost"), "localhost");
});

test("hostAllowed: the domain itself or a subdomain, case-insensitive, never a look-alike", () => {
  assert.ok(hostAllowed("example.com", ["example.com"]));
  assert.ok(hostAllowed("Shop.Example.com", ["example.com"]));
  assert.ok(hostAllowed("a.b.example.com", ["EXAMPLE.com"]));
  assert.ok(hostAllowed("b.org", ["a.org", "b.org"]));
  assert.ok(!hostAllowed("badexample.com", ["example.com"]));
  assert.ok(!hostAllowed("example.com.evil.net", ["example.com"]));
  assert.ok(!hostAllowed("example.com", ["shop.example.com"]), "a parent is not inside its subdomain");
  assert.ok(!hostAllowed("example.com", []));
  assert.ok(hostAllowed("example.com.", ["example.com"]), "a fully qualified name is the same host");
  assert.ok(hostAllowed("shop.example.com", ["example.com."]));
});
