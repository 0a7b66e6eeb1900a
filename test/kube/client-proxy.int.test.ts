// KubeClient through a kubeconfig's proxy-url: a real HTTP CONNECT proxy on
// 127.0.0.1 (node:http's 'connect' event) in front of the test apiserver.
// Every request and a watch go through the proxy's tunnel, with the
// cluster's TLS (its CA) end to end and the proxy credentials from the URL.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { KubeClient } from "../../kube/client.ts";
import { type KubeConfig, kubeConfigFromFiles } from "../../kube/kubeconfig.ts";
import { NAMESPACES } from "../../kube/resources.ts";
import { platform } from "../platform/env.ts";

describe("KubeClient through a kubeconfig proxy-url", () => {
  let proxy: Server;
  let proxyPort: number;
  const tunnels: { target: string; auth: string | undefined }[] = [];
  const sockets = new Set<Socket>();

  before(async () => {
    proxy = createServer((_req, res) => {
      res.writeHead(405).end("CONNECT only");
    });
    proxy.on("connect", (req, client: Socket, head: Buffer) => {
      tunnels.push({ target: req.url ?? "", auth: req.headers["proxy-authorization"] });
      const [host, port] = (req.url ?? "").split(":");
      const upstream = connect(Number(port), host, () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
      }
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    proxyPort = (proxy.address() as AddressInfo).port;
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => proxy.close(resolve));
  });

  /**
   * The admin kubeconfig with the proxy-url set on its clusters: a file of
   * those clusters first, merged (first wins per name) with the admin's.
   */
  function proxied(proxyUrl: string): KubeConfig {
    const admin = parse(readFileSync(platform().kubeconfig, "utf8")) as {
      clusters: { name: string; cluster: Record<string, unknown> }[];
    };
    const clusters = admin.clusters.map((c) => ({ name: c.name, cluster: { ...c.cluster, "proxy-url": proxyUrl } }));
    const file = join(mkdtempSync(join(platform().workDir, "proxied-")), "kubeconfig");
    writeFileSync(file, stringify({ apiVersion: "v1", kind: "Config", clusters }));
    return kubeConfigFromFiles([file, platform().kubeconfig]);
  }

  it("lists and watches through the proxy's CONNECT tunnel, with the proxy credentials of the URL", async () => {
    const client = new KubeClient(proxied(`http://feed:s3cret@127.0.0.1:${proxyPort}`));
    const apiserver = new URL(client.server).host;
    try {
      const list = await client.list(NAMESPACES);
      assert.ok(list.items.some((ns) => ns.metadata.name === "default"));
      const watch = client.watch(NAMESPACES, {
        resourceVersion: list.metadata.resourceVersion ?? "",
        timeoutSeconds: 1,
      });
      for await (const _ of watch) {
        // Whatever arrives within a second; the stream ending cleanly is what counts.
      }
      assert.ok(tunnels.length >= 1, "the proxy saw a CONNECT");
      assert.ok(
        tunnels.every((t) => t.target === apiserver),
        `every tunnel goes to the apiserver ${apiserver}: ${JSON.stringify(tunnels.map((t) => t.target))}`,
      );
      assert.equal(tunnels[0]!.auth, `Basic ${Buffer.from("feed:s3cret").toString("base64")}`);
    } finally {
      await client.close();
    }
  });
});
