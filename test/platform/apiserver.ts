// kube-apiserver of the test control plane, started the way envtest starts it
// (RBAC on, no ServiceAccount admission because nothing creates default
// service accounts) but with a static admin token instead of client certs,
// and service-account signing keys so TokenRequest works for real. With a
// node it is a cluster's apiserver: bound to the node's bridge address so pods
// reach it through the `kubernetes` Service, ServiceAccount admission on, and
// a client certificate for the kubelet's API (logs, exec).
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { binaryPath } from "./binaries.ts";
import { type ControlPlaneCerts, type IssuedCert, SERVICE_CIDR } from "./certs.ts";
import { freePort, retryOnPortClash } from "./ports.ts";
import { httpOk } from "./probe.ts";
import { ManagedProcess } from "./process.ts";

export interface ApiServer {
  url: string;
  port: number;
  /** Bearer token of the admin user (group system:masters). */
  adminToken: string;
  /** Admin kubeconfig file. */
  kubeconfig: string;
  caFile: string;
  process: ManagedProcess;
  /** Stops the process; data (etcd) and port stay reserved for `start`. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data, and waits for /readyz. */
  start(): Promise<void>;
  waitReady(timeoutMs?: number): Promise<void>;
}

export interface ApiServerOptions {
  workDir: string;
  etcdUrl: string;
  certs: ControlPlaneCerts;
  /** A name for logs/kubeconfig when several apiservers share a work dir. */
  name?: string;
  /** Serve a node: listen on its bridge address and talk to its kubelet with this client certificate. */
  node?: { address: string; kubeletClient: IssuedCert };
}

/** Writes a kubeconfig for a bearer token against `server`. */
export function writeKubeconfig(file: string, server: string, caFile: string, user: string, token: string): void {
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "feedcrawl-test", cluster: { server, "certificate-authority": caFile } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: "feedcrawl-test", context: { cluster: "feedcrawl-test", user, namespace: "default" } }],
    "current-context": "feedcrawl-test",
  };
  writeFileSync(file, stringify(config), { mode: 0o600 });
}

export function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  return retryOnPortClash(() => startApiServerOnce(options));
}

async function startApiServerOnce(options: ApiServerOptions): Promise<ApiServer> {
  const bin = binaryPath("kube-apiserver");
  const name = options.name ?? "kube-apiserver";
  const port = await freePort();
  const host = options.node?.address ?? "127.0.0.1";
  const url = `https://${host}:${port}`;
  const dir = join(options.workDir, name);
  mkdirSync(join(dir, "cert-dir"), { recursive: true });
  const adminToken = randomBytes(24).toString("hex");
  const tokenFile = join(dir, "tokens.csv");
  writeFileSync(tokenFile, `${adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
  const kubeconfig = join(dir, "kubeconfig");
  writeKubeconfig(kubeconfig, url, options.certs.caCert, "admin", adminToken);

  const proc = new ManagedProcess({
    name,
    command: bin,
    args: [
      `--etcd-servers=${options.etcdUrl}`,
      `--bind-address=${host}`,
      `--advertise-address=${host}`,
      `--secure-port=${port}`,
      `--tls-cert-file=${options.certs.servingCert}`,
      `--tls-private-key-file=${options.certs.servingKey}`,
      `--cert-dir=${join(dir, "cert-dir")}`,
      `--client-ca-file=${options.certs.caCert}`,
      `--token-auth-file=${tokenFile}`,
      "--authorization-mode=RBAC",
      `--service-account-issuer=${url}`,
      `--service-account-key-file=${options.certs.serviceAccountKey}`,
      `--service-account-signing-key-file=${options.certs.serviceAccountKey}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      "--allow-privileged=true",
      "--profiling=false",
      ...(options.node
        ? [
            // The kubernetes Service's endpoint is the advertised bridge address (the default lease reconciler).
            `--kubelet-client-certificate=${options.node.kubeletClient.cert}`,
            `--kubelet-client-key=${options.node.kubeletClient.key}`,
            `--kubelet-certificate-authority=${options.certs.caCert}`,
            "--kubelet-preferred-address-types=InternalIP",
          ]
        : [
            // As envtest: no controller creates the default ServiceAccount.
            "--disable-admission-plugins=ServiceAccount",
            // The loopback address is not a valid endpoint for the kubernetes Service.
            "--endpoint-reconciler-type=none",
          ]),
    ],
    logFile: join(options.workDir, "logs", `${name}.log`),
  });

  const readyz = () => httpOk(`${url}/readyz`, { caFile: options.certs.caCert, token: adminToken });
  const waitReady = (timeoutMs = 90_000) => proc.waitReady(readyz, timeoutMs, "ready (/readyz)");
  await proc.startAndWait(readyz, 90_000, "ready (/readyz)");
  return {
    url,
    port,
    adminToken,
    kubeconfig,
    caFile: options.certs.caCert,
    process: proc,
    stop: () => proc.stop(),
    start: () => proc.startAndWait(readyz, 90_000, "ready (/readyz) after a restart"),
    waitReady,
  };
}
