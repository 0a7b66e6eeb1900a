// Where the test platform's real servers are: built by build-testbin.sh into
// ~/.cache/feedcrawl/testbin/<name>-<version>/ at the versions pinned in
// versions.env. A missing binary is an error that says how to build it;
// tests never skip because of it.
import { accessSync, constants, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

const versionsFile = new URL("versions.env", import.meta.url);

export type BinaryName =
  | "etcd"
  | "kube-apiserver"
  | "kube-controller-manager"
  | "kubectl"
  | "helm"
  | "versitygw"
  | "toxiproxy-server";

/** The pinned versions, e.g. { K8S_VERSION: "1.36.3", … }. */
export function versions(): Record<string, string> {
  const result: Record<string, string> = {};
  for (const line of readFileSync(versionsFile, "utf8").split("\n")) {
    const match = /^\s*([A-Z0-9_]+)=(\S+)/.exec(line);
    if (match?.[1] && match[2]) result[match[1]] = match[2];
  }
  return result;
}

/** The cache folder; FEEDCRAWL_TESTBIN overrides it (build-testbin.sh reads it too). */
export function testbinDir(): string {
  return process.env.FEEDCRAWL_TESTBIN || join(homedir(), ".cache", "feedcrawl", "testbin");
}

const folderOf: Record<BinaryName, [dir: string, versionKey: string]> = {
  etcd: ["etcd", "ETCD_VERSION"],
  "kube-apiserver": ["kubernetes", "K8S_VERSION"],
  "kube-controller-manager": ["kubernetes", "K8S_VERSION"],
  kubectl: ["kubernetes", "K8S_VERSION"],
  helm: ["helm", "HELM_VERSION"],
  versitygw: ["versitygw", "VERSITYGW_VERSION"],
  "toxiproxy-server": ["toxiproxy", "TOXIPROXY_VERSION"],
};

export class MissingBinaryError extends Error {
  override name = "MissingBinaryError";
}

/** Absolute path of a built binary, or a MissingBinaryError saying how to build it. */
export function binaryPath(name: BinaryName): string {
  const [dir, key] = folderOf[name];
  const version = versions()[key];
  if (!version) throw new Error(`${key} is missing from test/platform/versions.env`);
  const path = join(testbinDir(), `${dir}-${version}`, name);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new MissingBinaryError(
      `${name} ${version} is not built: ${path} does not exist. Build the test platform's binaries with ` +
        "`npm run testbin` (bash test/platform/build-testbin.sh; needs Go and the Go module proxy, " +
        "a cold build takes about 30 min on 2 cores, later runs reuse the cache).",
    );
  }
  return path;
}

/** Fails with the build hint unless every binary the platform starts is built. */
export function requireBinaries(names: BinaryName[]): Record<BinaryName, string> {
  const missing: string[] = [];
  const found: Partial<Record<BinaryName, string>> = {};
  for (const name of names) {
    try {
      found[name] = binaryPath(name);
    } catch (err) {
      if (!(err instanceof MissingBinaryError)) throw err;
      missing.push(name);
    }
  }
  if (missing.length > 0) {
    // Re-throw the first one's message, naming all that are missing.
    const first = missing[0] as BinaryName;
    try {
      binaryPath(first);
    } catch (err) {
      throw new MissingBinaryError(`Missing test binaries: ${missing.join(", ")}. ${(err as Error).message}`);
    }
  }
  return found as Record<BinaryName, string>;
}
