// `feedcrawl crawl` reads HTTP_PROXY / HTTPS_PROXY / NO_PROXY: a real process
// crawls an http:// site (absolute-form through the proxy) and an https:// one
// (a CONNECT tunnel, TLS end to end with a certificate made here and trusted
// through NODE_EXTRA_CA_CERTS), NO_PROXY sends a host direct, and a proxy
// variable that is not a proxy URL stops the run before any request.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { stringify } from "yaml";
import { type ForwardProxy, startForwardProxy } from "./forward-proxy.ts";
import { startSite, type TestSite } from "./helpers.ts";

const root = new URL("../../", import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), "proxy-cli-test-"));
let proxy: ForwardProxy;
let plain: TestSite;
let secure: https.Server;
let securePort = 0;

const page = (path: string) =>
  path === "/robots.txt"
    ? "User-agent: *\nAllow: /\n"
    : path === "/"
      ? '<h1>home</h1><a href="/a">a</a>'
      : path === "/a"
        ? "<h1>a</h1>"
        : undefined;

before(async () => {
  execFileSync(
    "openssl",
    [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"],
      ...["-keyout", join(tmp, "key.pem"), "-out", join(tmp, "cert.pem"), "-subj", "/CN=localhost"],
      ...["-addext", "subjectAltName=DNS:localhost"],
    ],
    { stdio: "ignore" },
  );
  secure = https.createServer(
    { key: readFileSync(join(tmp, "key.pem")), cert: readFileSync(join(tmp, "cert.pem")) },
    (req, res) => {
      const html = page(new URL(req.url ?? "/", "https://x").pathname);
      res.writeHead(html === undefined ? 404 : 200, { "content-type": "text/html" }).end(html ?? "");
    },
  );
  await new Promise<void>((r) => secure.listen(0, "127.0.0.1", r));
  securePort = (secure.address() as AddressInfo).port;
  plain = await startSite((_h, path) => page(path));
  proxy = await startForwardProxy();
});
after(async () => {
  await proxy?.close();
  await plain?.close();
  secure?.closeAllConnections();
  await new Promise((r) => secure?.close(r));
  rmSync(tmp, { recursive: true, force: true });
});

function run(env: Record<string, string>, name: string) {
  const manifest = join(tmp, `${name}.yaml`);
  writeFileSync(
    manifest,
    stringify({
      name,
      startUrls: [`https://localhost:${securePort}/`, `${plain.url}/`],
      follow: [{}],
      extract: [{ name: "page", fields: { url: { meta: "url" }, title: { selector: "h1", required: true } } }],
      settings: { allowPrivateNetworks: ["127.0.0.0/8", "::1/128"] },
    }),
  );
  const out = join(tmp, name);
  const child = spawn(process.execPath, [join(root, "bin/feedcrawl.ts"), "crawl", manifest, "--out", out], {
    cwd: tmp,
    env: { ...process.env, NODE_EXTRA_CA_CERTS: join(tmp, "cert.pem"), NO_PROXY: "", no_proxy: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  return new Promise<{ code: number | null; stderr: string; items: { url: string }[] }>((resolve) =>
    child.on("close", (code) => {
      const files = code === 0 ? readdirSync(out).filter((f) => f.endsWith(".jsonl")) : [];
      const items = files.flatMap((f) =>
        readFileSync(join(out, f), "utf8")
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { url: string }),
      );
      resolve({ code, stderr, items });
    }),
  );
}

describe("feedcrawl crawl with the proxy environment", () => {
  test("HTTPS_PROXY tunnels https:// with CONNECT, HTTP_PROXY forwards http:// in absolute form", async () => {
    proxy.forwarded.length = 0;
    const r = await run({ HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url }, "both");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.items.length, 4, r.stderr);
    assert.ok(proxy.forwarded.includes(`CONNECT localhost:${securePort}`), proxy.forwarded.join("\n"));
    const gets = proxy.forwarded.filter((f) => f.startsWith(`GET 127.0.0.1:${plain.port}`)).sort();
    assert.deepEqual(
      gets,
      ["/", "/a", "/robots.txt"].map((p) => `GET 127.0.0.1:${plain.port}${p}`),
    );
    assert.ok(!proxy.forwarded.some((f) => f.startsWith("GET localhost")), "https is never sent in the clear");
  });

  test("NO_PROXY sends its hosts direct; a scheme without a proxy variable goes direct", async () => {
    proxy.forwarded.length = 0;
    const r = await run({ HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url, NO_PROXY: "127.0.0.1" }, "noproxy");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.items.length, 4);
    assert.deepEqual(
      proxy.forwarded.filter((f) => f.startsWith("GET")),
      [],
    );
    assert.ok(proxy.forwarded.some((f) => f.startsWith("CONNECT localhost")));

    proxy.forwarded.length = 0;
    const onlyHttp = await run({ HTTP_PROXY: proxy.url }, "onlyhttp");
    assert.equal(onlyHttp.code, 0, onlyHttp.stderr);
    assert.ok(!proxy.forwarded.some((f) => f.startsWith("CONNECT")), proxy.forwarded.join("\n"));
  });

  test("a proxy variable that is not an http(s) proxy URL exits 2, naming it, before any request", async () => {
    proxy.forwarded.length = 0;
    const r = await run({ HTTP_PROXY: "socks5://127.0.0.1:1080" }, "bad");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /HTTP_PROXY .*socks5:\/\/127\.0\.0\.1:1080.*http:\/\/ or https:\/\//);
    assert.deepEqual(proxy.forwarded, []);
  });
});
