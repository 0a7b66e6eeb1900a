// KubeClient against a real TLS server on 127.0.0.1 that requires a client
// certificate from its CA and answers with the certificate's CN: an exec
// plugin that rotates the client certificate (a new one once the old
// credential expires) is picked up by the next request, while unchanged
// credentials keep one keep-alive connection; a socks proxy-url is refused
// with a message naming the kubeconfig field.
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { TLSSocket } from "node:tls";
import { stringify } from "yaml";
import { KubeClient } from "../../kube/client.ts";
import { type KubeConfig, kubeConfigFromFiles } from "../../kube/kubeconfig.ts";
import { type IssuedCert, issueCert, makeCerts } from "../platform/certs.ts";

/** The exec plugin: the current certificate and key from $CERT_DIR, valid for one second. */
const PLUGIN = `
import { readFileSync } from "node:fs";
const dir = process.env.CERT_DIR;
process.stdout.write(JSON.stringify({
  apiVersion: "client.authentication.k8s.io/v1",
  kind: "ExecCredential",
  status: {
    clientCertificateData: readFileSync(dir + "/current.crt", "utf8"),
    clientKeyData: readFileSync(dir + "/current.key", "utf8"),
    expirationTimestamp: new Date(Date.now() + 1000).toISOString(),
  },
}));
`;

describe("KubeClient credentials", () => {
  let dir: string;
  let server: Server;
  let url: string;
  let caFile: string;
  let alice: IssuedCert;
  let bob: IssuedCert;
  let connections = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "kube-client-"));
    const certs = await makeCerts(join(dir, "pki"));
    caFile = certs.caCert;
    alice = await issueCert(certs, "alice", { cn: "alice", usage: "client" });
    bob = await issueCert(certs, "bob", { cn: "bob", usage: "client" });
    server = createServer(
      {
        cert: readFileSync(certs.servingCert),
        key: readFileSync(certs.servingKey),
        ca: readFileSync(certs.caCert),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ user: peer.subject?.CN }));
      },
    );
    server.on("secureConnection", () => connections++);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    writeFileSync(join(dir, "plugin.mjs"), PLUGIN);
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  function use(cert: IssuedCert) {
    copyFileSync(cert.cert, join(dir, "current.crt"));
    copyFileSync(cert.key, join(dir, "current.key"));
  }

  function kubeConfig(proxyUrl?: string): KubeConfig {
    const file = join(dir, "kubeconfig");
    const cluster = { server: url, "certificate-authority": caFile, ...(proxyUrl ? { "proxy-url": proxyUrl } : {}) };
    const exec = {
      apiVersion: "client.authentication.k8s.io/v1",
      command: process.execPath,
      args: [join(dir, "plugin.mjs")],
      env: [{ name: "CERT_DIR", value: dir }],
      interactiveMode: "Never",
    };
    writeFileSync(
      file,
      stringify({
        clusters: [{ name: "test", cluster }],
        users: [{ name: "rotating", user: { exec } }],
        contexts: [{ name: "test", context: { cluster: "test", user: "rotating" } }],
        "current-context": "test",
      }),
    );
    return kubeConfigFromFiles([file]);
  }

  it("connects with the rotated client certificate once the exec credential changes", async () => {
    use(alice);
    const client = new KubeClient(kubeConfig());
    try {
      assert.deepEqual(await client.request("GET", "/whoami"), { user: "alice" });
      await sleep(50); // undici frees the socket for the next request a moment after the body ends
      const before = connections;
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(await client.request("GET", "/whoami"), { user: "alice" });
        await sleep(50);
      }
      assert.equal(connections, before, "unchanged credentials reuse the keep-alive connection");

      use(bob);
      await sleep(1_100); // the plugin's credential expires; the kube config runs it again
      assert.deepEqual(await client.request("GET", "/whoami"), { user: "bob" });
      assert.equal(connections, before + 1, "the new certificate came on a new connection");
    } finally {
      await client.close();
    }
  });

  it("refuses a socks proxy-url, naming the kubeconfig field", async () => {
    use(alice);
    const client = new KubeClient(kubeConfig("socks5://127.0.0.1:1080"));
    try {
      await assert.rejects(
        client.request("GET", "/whoami"),
        /proxy-url of cluster "test" in the kubeconfig is a socks5 proxy: only http:\/\/ and https:\/\/ proxies/,
      );
    } finally {
      await client.close();
    }
  });
});
