// kube/kubeconfig.ts on real files: KUBECONFIG merging (the first file wins per
// name), relative paths, a context override, token files and client
// certificates re-read per request, a real exec plugin (run once per
// credential lifetime, again after expiry), auth-provider refused with the
// user's name, and in-cluster config from a temporary service-account folder.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { RequestOptions } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { stringify } from "yaml";
import { type KubeConfig, kubeConfigFromFiles, loadKubeConfig } from "../../kube/kubeconfig.ts";

/** Prints a token "<prefix>-<run number>" valid for $TTL_MS; counts runs in $COUNT_FILE. */
const PLUGIN = `
import { existsSync, readFileSync, writeFileSync } from "node:fs";
const file = process.env.COUNT_FILE;
const runs = (existsSync(file) ? Number(readFileSync(file, "utf8")) : 0) + 1;
writeFileSync(file, String(runs));
const info = JSON.parse(process.env.KUBERNETES_EXEC_INFO);
if (process.env.FAIL) { process.stderr.write("no credentials for you"); process.exit(1); }
process.stdout.write(JSON.stringify({
  apiVersion: info.apiVersion,
  kind: "ExecCredential",
  status: {
    token: process.env.PREFIX + "-" + runs + (info.spec.cluster ? "-" + info.spec.cluster.server : ""),
    expirationTimestamp: new Date(Date.now() + Number(process.env.TTL_MS)).toISOString(),
  },
}));
`;

async function apply(kc: KubeConfig): Promise<RequestOptions> {
  const opts: RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  return opts;
}
const bearer = (opts: RequestOptions) => (opts.headers as Record<string, string> | undefined)?.Authorization;

describe("kubeconfig loader", () => {
  let dir: string;
  const write = (name: string, content: unknown) => {
    const path = join(dir, name);
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, typeof content === "string" ? content : stringify(content));
    return path;
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "kubeconfig-"));
    write("plugin.mjs", PLUGIN);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("merges KUBECONFIG files, the first winning per name, with paths relative to each file", async () => {
    write("a/ca.crt", "CA-A");
    write("a/token", "file-token\n");
    const a = write("a/config", {
      "current-context": "main",
      clusters: [
        {
          name: "c1",
          cluster: { server: "https://a.example:6443", "certificate-authority": "ca.crt", "tls-server-name": "api" },
        },
      ],
      users: [{ name: "u1", user: { tokenFile: "token" } }],
      contexts: [{ name: "main", context: { cluster: "c1", user: "u1", namespace: "crawl" } }],
    });
    const b = write("b/config", {
      "current-context": "other",
      clusters: [
        { name: "c1", cluster: { server: "https://b.example" } },
        {
          name: "c2",
          cluster: {
            server: "https://c2.example",
            "certificate-authority-data": Buffer.from("CA-B").toString("base64"),
            "insecure-skip-tls-verify": true,
            "proxy-url": "http://proxy:3128",
          },
        },
      ],
      users: [
        { name: "u1", user: { token: "from-b" } },
        { name: "basic", user: { username: "ann", password: "pw" } },
      ],
      contexts: [
        { name: "main", context: { cluster: "c2", user: "basic" } },
        { name: "other", context: { cluster: "c2", user: "basic" } },
      ],
    });
    const env = { KUBECONFIG: [a, join(dir, "missing"), b].join(":") };
    const kc = loadKubeConfig({ env, home: dir });
    assert.deepEqual(kc.getCurrentCluster(), { name: "c1", server: "https://a.example:6443" });
    assert.equal(kc.namespace, "crawl");
    const opts = await apply(kc);
    assert.equal(String(opts.ca), "CA-A");
    assert.equal(opts.servername, "api");
    assert.equal(opts.rejectUnauthorized, undefined);
    assert.equal(bearer(opts), "Bearer file-token");

    write("a/token", "rotated-token\n");
    assert.equal(bearer(await apply(kc)), "Bearer rotated-token", "the token file is re-read");

    const other = loadKubeConfig({ env, home: dir, context: "other" });
    assert.deepEqual(other.getCurrentCluster(), {
      name: "c2",
      server: "https://c2.example",
      proxyUrl: "http://proxy:3128",
    });
    const basic = await apply(other);
    assert.equal(String(basic.ca), "CA-B");
    assert.equal(basic.rejectUnauthorized, false);
    assert.equal(basic.auth, "ann:pw");
    assert.equal(bearer(basic), undefined);
  });

  it("re-reads client certificate files and decodes -data", async () => {
    write("certs/tls.crt", "CERT-1");
    write("certs/tls.key", "KEY-1");
    const file = write("certs/config", {
      "current-context": "x",
      clusters: [{ name: "c", cluster: { server: "https://c" } }],
      users: [
        { name: "files", user: { "client-certificate": "tls.crt", "client-key": join(dir, "certs/tls.key") } },
        {
          name: "data",
          user: {
            "client-certificate-data": Buffer.from("CERT-D").toString("base64"),
            "client-key-data": Buffer.from("KEY-D").toString("base64"),
          },
        },
      ],
      contexts: [
        { name: "x", context: { cluster: "c", user: "files" } },
        { name: "d", context: { cluster: "c", user: "data" } },
      ],
    });
    const kc = kubeConfigFromFiles([file]);
    let opts = await apply(kc);
    assert.deepEqual([String(opts.cert), String(opts.key)], ["CERT-1", "KEY-1"]);
    write("certs/tls.crt", "CERT-2");
    write("certs/tls.key", "KEY-2");
    opts = await apply(kc);
    assert.deepEqual([String(opts.cert), String(opts.key)], ["CERT-2", "KEY-2"]);
    opts = await apply(kubeConfigFromFiles([file], "d"));
    assert.deepEqual([String(opts.cert), String(opts.key)], ["CERT-D", "KEY-D"]);
  });

  for (const apiVersion of ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"]) {
    it(`runs a ${apiVersion.split("/")[1]} exec plugin once per credential lifetime`, async () => {
      const countFile = join(dir, `count-${apiVersion.split("/")[1]}`);
      const file = write(`exec-${apiVersion.split("/")[1]}/config`, {
        "current-context": "x",
        clusters: [{ name: "c", cluster: { server: "https://exec.example" } }],
        users: [
          {
            name: "plugin",
            user: {
              exec: {
                apiVersion,
                command: process.execPath,
                args: [join(dir, "plugin.mjs")],
                env: [
                  { name: "COUNT_FILE", value: countFile },
                  { name: "PREFIX", value: "tok" },
                  { name: "TTL_MS", value: "800" },
                ],
                provideClusterInfo: true,
              },
            },
          },
        ],
        contexts: [{ name: "x", context: { cluster: "c", user: "plugin" } }],
      });
      const kc = kubeConfigFromFiles([file]);
      const first = await Promise.all([apply(kc), apply(kc), apply(kc)]);
      for (const opts of first) assert.equal(bearer(opts), "Bearer tok-1-https://exec.example");
      assert.equal(readFileSync(countFile, "utf8"), "1", "concurrent requests share one plugin run");
      await sleep(1_000);
      assert.equal(bearer(await apply(kc)), "Bearer tok-2-https://exec.example", "re-run after expiry");
    });
  }

  it("names the plugin and user when an exec plugin fails", async () => {
    const file = write("exec-fail/config", {
      "current-context": "x",
      clusters: [{ name: "c", cluster: { server: "https://c" } }],
      users: [
        {
          name: "broken",
          user: {
            exec: {
              apiVersion: "client.authentication.k8s.io/v1",
              command: process.execPath,
              args: [join(dir, "plugin.mjs")],
              env: [
                { name: "COUNT_FILE", value: join(dir, "count-fail") },
                { name: "FAIL", value: "1" },
              ],
            },
          },
        },
      ],
      contexts: [{ name: "x", context: { cluster: "c", user: "broken" } }],
    });
    await assert.rejects(
      apply(kubeConfigFromFiles([file])),
      /exec plugin ".*" of kubeconfig user "broken" failed: no credentials for you/,
    );
  });

  it("refuses an auth-provider user, naming it and pointing to exec plugins", () => {
    const file = write("oidc/config", {
      "current-context": "x",
      clusters: [{ name: "c", cluster: { server: "https://c" } }],
      users: [{ name: "alice@corp", user: { "auth-provider": { name: "oidc", config: {} } } }],
      contexts: [{ name: "x", context: { cluster: "c", user: "alice@corp" } }],
    });
    assert.throws(
      () => kubeConfigFromFiles([file]),
      /Kubeconfig user "alice@corp" uses auth-provider "oidc".*use an exec plugin/,
    );
  });

  it("loads ~/.kube/config without KUBECONFIG, and the service account in a pod", async () => {
    const home = join(dir, "home");
    write("home/.kube/config", {
      "current-context": "h",
      clusters: [{ name: "hc", cluster: { server: "https://home" } }],
      users: [{ name: "hu", user: { token: "home-token" } }],
      contexts: [{ name: "h", context: { cluster: "hc", user: "hu" } }],
    });
    assert.equal(loadKubeConfig({ env: {}, home }).getCurrentCluster().server, "https://home");

    const sa = join(dir, "sa");
    write("sa/token", "sa-token-1");
    write("sa/ca.crt", "SA-CA");
    write("sa/namespace", "feedcrawl\n");
    const env = { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" };
    const kc = loadKubeConfig({ env, home: join(dir, "nohome"), serviceAccountDir: sa });
    assert.equal(kc.getCurrentCluster().server, "https://[fd00::1]:443");
    assert.equal(kc.namespace, "feedcrawl");
    const opts = await apply(kc);
    assert.equal(String(opts.ca), "SA-CA");
    assert.equal(bearer(opts), "Bearer sa-token-1");
    write("sa/token", "sa-token-2");
    assert.equal(bearer(await apply(kc)), "Bearer sa-token-2", "the projected token is re-read");

    assert.throws(
      () => loadKubeConfig({ env: {}, home: join(dir, "nohome"), serviceAccountDir: sa }),
      /No kube config/,
    );
  });
});
