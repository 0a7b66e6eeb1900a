// The kube config of the operator and the runner: which API server, and the
// credentials of each request. Replaces @kubernetes/client-node's KubeConfig,
// whose import alone (868 generated API modules) cost ~53 MB RSS (issue 13).
// Sources, in client-node's order: $KUBECONFIG (colon-separated files merged,
// the first file wins per name), else ~/.kube/config, else in-cluster (the
// service account). Users authenticate with a token or token file, a client
// certificate (file or data), basic auth, or an exec plugin
// (client.authentication.k8s.io v1/v1beta1). Files are re-read for every
// request, so rotated tokens and certificates take effect; an exec credential
// is cached until its expirationTimestamp.
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { RequestOptions } from "node:https";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";

/** The cluster of the current context. */
export interface KubeCluster {
  name: string;
  server: string;
  proxyUrl?: string;
}

/**
 * What KubeClient needs of a kube config: the current cluster, and each
 * request's TLS options and headers. client-node's KubeConfig fits it too
 * (tests use it for client-node's typed APIs).
 */
export interface KubeAuth {
  getCurrentCluster(): KubeCluster | null;
  applyToHTTPSOptions(opts: RequestOptions): Promise<void>;
}

interface ClusterEntry {
  name: string;
  server: string;
  proxyUrl?: string;
  caFile?: string;
  caData?: string;
  skipTlsVerify: boolean;
  tlsServerName?: string;
}

interface ExecConfig {
  apiVersion: string;
  command: string;
  args: string[];
  env: { name: string; value: string }[];
  provideClusterInfo: boolean;
}

interface UserEntry {
  name: string;
  token?: string;
  tokenFile?: string;
  certFile?: string;
  certData?: string;
  keyFile?: string;
  keyData?: string;
  username?: string;
  password?: string;
  exec?: ExecConfig;
}

interface ExecCredential {
  token?: string;
  cert?: string;
  key?: string;
  /** Epoch ms; undefined: valid until the process ends. */
  expires?: number;
}

const EXEC_API_VERSIONS = ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"];
const EXEC_TIMEOUT_MS = 60_000;
/** Where a pod's service account is mounted; tests pass a temporary root. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

type Doc = Record<string, unknown>;
const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
const named = (v: unknown): Doc[] => (Array.isArray(v) ? v.filter((e): e is Doc => !!e && typeof e === "object") : []);
const inner = (e: Doc, key: string): Doc => (e[key] && typeof e[key] === "object" ? (e[key] as Doc) : {});

export class KubeConfig implements KubeAuth {
  readonly #cluster: ClusterEntry;
  readonly #user: UserEntry;
  /** The context's namespace, or the service account's in a pod. */
  readonly namespace: string | undefined;
  #exec: ExecCredential | undefined;
  #execRun: Promise<ExecCredential> | undefined;

  constructor(cluster: ClusterEntry, user: UserEntry, namespace?: string) {
    this.#cluster = cluster;
    this.#user = user;
    this.namespace = namespace;
  }

  getCurrentCluster(): KubeCluster {
    const { name, server, proxyUrl } = this.#cluster;
    return { name, server, ...(proxyUrl ? { proxyUrl } : {}) };
  }

  async applyToHTTPSOptions(opts: RequestOptions): Promise<void> {
    const c = this.#cluster;
    const u = this.#user;
    if (c.caData) opts.ca = Buffer.from(c.caData, "base64");
    else if (c.caFile) opts.ca = await readFile(c.caFile);
    if (c.skipTlsVerify) opts.rejectUnauthorized = false;
    if (c.tlsServerName) opts.servername = c.tlsServerName;

    if (u.certData) opts.cert = Buffer.from(u.certData, "base64");
    else if (u.certFile) opts.cert = await readFile(u.certFile);
    if (u.keyData) opts.key = Buffer.from(u.keyData, "base64");
    else if (u.keyFile) opts.key = await readFile(u.keyFile);

    let token = u.token;
    if (!token && u.tokenFile) token = (await readFile(u.tokenFile, "utf8")).trim();
    if (u.exec) {
      const cred = await this.#execCredential();
      if (cred.token) token = cred.token;
      if (cred.cert) opts.cert = Buffer.from(cred.cert);
      if (cred.key) opts.key = Buffer.from(cred.key);
    }
    if (token) opts.headers = { ...opts.headers, Authorization: `Bearer ${token}` };
    else if (u.username !== undefined) opts.auth = `${u.username}:${u.password ?? ""}`;
  }

  /** The exec plugin's credential: cached until it expires, one run at a time. */
  #execCredential(): Promise<ExecCredential> {
    const cached = this.#exec;
    if (cached && (cached.expires === undefined || cached.expires > Date.now())) return Promise.resolve(cached);
    this.#execRun ??= runExecPlugin(this.#user, this.#cluster).then(
      (cred) => {
        this.#exec = cred;
        this.#execRun = undefined;
        return cred;
      },
      (err: unknown) => {
        this.#execRun = undefined;
        throw err;
      },
    );
    return this.#execRun;
  }
}

function runExecPlugin(user: UserEntry, cluster: ClusterEntry): Promise<ExecCredential> {
  const exec = user.exec as ExecConfig;
  const spec: Doc = { interactive: false };
  if (exec.provideClusterInfo) {
    spec.cluster = {
      server: cluster.server,
      ...(cluster.tlsServerName ? { "tls-server-name": cluster.tlsServerName } : {}),
      "insecure-skip-tls-verify": cluster.skipTlsVerify,
      ...(cluster.caData || cluster.caFile
        ? { "certificate-authority-data": cluster.caData ?? readFileSync(cluster.caFile as string).toString("base64") }
        : {}),
      ...(cluster.proxyUrl ? { "proxy-url": cluster.proxyUrl } : {}),
    };
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...Object.fromEntries(exec.env.map((e) => [e.name, e.value])),
    KUBERNETES_EXEC_INFO: JSON.stringify({ apiVersion: exec.apiVersion, kind: "ExecCredential", spec }),
  };
  const what = `The exec plugin "${exec.command}" of kubeconfig user "${user.name}"`;
  return new Promise((done, fail) => {
    execFile(exec.command, exec.args, { env, timeout: EXEC_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) {
        const detail = String(stderr).trim().slice(0, 500) || err.message;
        fail(new Error(`${what} failed: ${detail}`));
        return;
      }
      try {
        done(parseExecCredential(stdout, exec.apiVersion));
      } catch (parseErr) {
        fail(new Error(`${what} printed no usable ExecCredential: ${(parseErr as Error).message}`));
      }
    });
  });
}

function parseExecCredential(stdout: string, apiVersion: string): ExecCredential {
  const doc = JSON.parse(stdout) as Doc;
  if (doc.kind !== "ExecCredential") throw new Error(`kind is ${JSON.stringify(doc.kind)}, not ExecCredential`);
  if (doc.apiVersion !== apiVersion) throw new Error(`apiVersion ${String(doc.apiVersion)} is not ${apiVersion}`);
  const status = inner(doc, "status");
  const token = str(status.token);
  const cert = str(status.clientCertificateData);
  const key = str(status.clientKeyData);
  if (!token && !(cert && key))
    throw new Error("status has neither a token nor clientCertificateData and clientKeyData");
  const expiration = str(status.expirationTimestamp);
  const expires = expiration ? Date.parse(expiration) : undefined;
  if (expires !== undefined && Number.isNaN(expires))
    throw new Error(`expirationTimestamp ${expiration} is not a time`);
  return { token, cert, key, expires };
}

/** One kubeconfig file's entries, relative paths resolved against its folder. */
interface FileEntries {
  currentContext?: string;
  clusters: Map<string, Doc>;
  users: Map<string, Doc>;
  contexts: Map<string, Doc>;
}

function readKubeconfigFiles(files: string[]): FileEntries {
  const merged: FileEntries = { clusters: new Map(), users: new Map(), contexts: new Map() };
  for (const file of files) {
    const doc = (parseYaml(readFileSync(file, "utf8")) ?? {}) as Doc;
    const base = dirname(resolve(file));
    merged.currentContext ??= str(doc["current-context"]);
    const add = (into: Map<string, Doc>, key: string, field: string) => {
      for (const e of named(doc[key])) {
        const name = str(e.name);
        if (name && !into.has(name)) into.set(name, { ...inner(e, field), __base: base });
      }
    };
    add(merged.clusters, "clusters", "cluster");
    add(merged.users, "users", "user");
    add(merged.contexts, "contexts", "context");
  }
  return merged;
}

/** A path from a kubeconfig, relative to the file that named it. */
function filePath(entry: Doc, key: string): string | undefined {
  const value = str(entry[key]);
  return value && !isAbsolute(value) ? join(entry.__base as string, value) : value;
}

function toCluster(name: string, e: Doc): ClusterEntry {
  const server = str(e.server);
  if (!server) throw new Error(`Cluster "${name}" in the kubeconfig has no server`);
  return {
    name,
    server,
    proxyUrl: str(e["proxy-url"]),
    caFile: filePath(e, "certificate-authority"),
    caData: str(e["certificate-authority-data"]),
    skipTlsVerify: e["insecure-skip-tls-verify"] === true,
    tlsServerName: str(e["tls-server-name"]),
  };
}

function toUser(name: string, e: Doc): UserEntry {
  const provider = inner(e, "auth-provider");
  if (Object.keys(provider).length > 0) {
    throw new Error(
      `Kubeconfig user "${name}" uses auth-provider "${String(provider.name ?? "?")}", which feedcrawl does not ` +
        "support: use an exec plugin (client.authentication.k8s.io/v1, e.g. kubelogin or the cloud's CLI) instead",
    );
  }
  const user: UserEntry = {
    name,
    token: str(e.token),
    tokenFile: filePath(e, "tokenFile"),
    certFile: filePath(e, "client-certificate"),
    certData: str(e["client-certificate-data"]),
    keyFile: filePath(e, "client-key"),
    keyData: str(e["client-key-data"]),
    username: str(e.username),
    password: str(e.password),
  };
  const exec = inner(e, "exec");
  if (Object.keys(exec).length > 0) {
    const apiVersion = str(exec.apiVersion) ?? "";
    if (!EXEC_API_VERSIONS.includes(apiVersion)) {
      throw new Error(
        `The exec plugin of kubeconfig user "${name}" has apiVersion "${apiVersion}": ` +
          `supported are ${EXEC_API_VERSIONS.join(" and ")}`,
      );
    }
    const command = str(exec.command);
    if (!command) throw new Error(`The exec plugin of kubeconfig user "${name}" has no command`);
    user.exec = {
      apiVersion,
      // Like kubectl: a command with a path separator is relative to the kubeconfig's folder.
      command: command.includes("/") ? (filePath({ command, __base: e.__base }, "command") as string) : command,
      args: Array.isArray(exec.args) ? exec.args.map(String) : [],
      env: named(exec.env).map((v) => ({ name: String(v.name), value: String(v.value ?? "") })),
      provideClusterInfo: exec.provideClusterInfo === true,
    };
  }
  return user;
}

/** The kube config of kubeconfig `files` (merged, the first wins per name) for `context` or the current one. */
export function kubeConfigFromFiles(files: string[], context?: string): KubeConfig {
  const merged = readKubeconfigFiles(files);
  const contextName = context ?? merged.currentContext;
  if (!contextName) throw new Error(`The kubeconfig (${files.join(", ")}) has no current-context`);
  const ctx = merged.contexts.get(contextName);
  if (!ctx) throw new Error(`The kubeconfig (${files.join(", ")}) has no context "${contextName}"`);
  const clusterName = str(ctx.cluster) ?? "";
  const cluster = merged.clusters.get(clusterName);
  if (!cluster) throw new Error(`Context "${contextName}" names cluster "${clusterName}", not in the kubeconfig`);
  const userName = str(ctx.user);
  const user = userName ? merged.users.get(userName) : {};
  if (!user) throw new Error(`Context "${contextName}" names user "${userName}", not in the kubeconfig`);
  return new KubeConfig(toCluster(clusterName, cluster), toUser(userName ?? "", user), str(ctx.namespace));
}

/** The pod's service account: KUBERNETES_SERVICE_HOST/PORT, its token (re-read per request) and CA. */
export function inClusterKubeConfig(
  env: NodeJS.ProcessEnv = process.env,
  root: string = SERVICE_ACCOUNT_DIR,
): KubeConfig {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new Error("Not in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set");
  const namespaceFile = join(root, "namespace");
  const namespace = existsSync(namespaceFile) ? readFileSync(namespaceFile, "utf8").trim() : undefined;
  return new KubeConfig(
    {
      name: "inCluster",
      server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
      caFile: join(root, "ca.crt"),
      skipTlsVerify: false,
    },
    { name: "inClusterUser", tokenFile: join(root, "token") },
    namespace,
  );
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** The home folder holding .kube/config. */
  home?: string;
  /** The service-account folder of in-cluster config. */
  serviceAccountDir?: string;
  /** A context other than current-context. */
  context?: string;
}

/** $KUBECONFIG, else ~/.kube/config, else the pod's service account; throws when none is there. */
export function loadKubeConfig(options: LoadOptions = {}): KubeConfig {
  const env = options.env ?? process.env;
  const files = (env.KUBECONFIG ?? "").split(delimiter).filter((f) => f !== "" && existsSync(f));
  if (files.length > 0) return kubeConfigFromFiles(files, options.context);
  const home = join(options.home ?? homedir(), ".kube", "config");
  if (existsSync(home)) return kubeConfigFromFiles([home], options.context);
  const root = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  if (env.KUBERNETES_SERVICE_HOST && existsSync(join(root, "token"))) return inClusterKubeConfig(env, root);
  throw new Error("No kube config: KUBECONFIG is not set, ~/.kube/config does not exist and this is not a pod");
}
