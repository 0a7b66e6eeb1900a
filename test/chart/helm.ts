// Runs the helm built for the test platform against charts/feedcrawl and
// parses what it renders. A missing helm fails with the build hint.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { binaryPath } from "../platform/binaries.ts";

export const chartDir = fileURLToPath(new URL("../../charts/feedcrawl", import.meta.url));

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm with `args`; never throws on a non-zero exit (callers assert on it). */
export function helm(args: string[], env: NodeJS.ProcessEnv = {}): Promise<HelmResult> {
  const bin = binaryPath("helm");
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      args,
      {
        // Keep helm's caches and config out of the user's home.
        env: {
          ...process.env,
          HELM_CACHE_HOME: "/tmp/feedcrawl-helm/cache",
          HELM_CONFIG_HOME: "/tmp/feedcrawl-helm/config",
          HELM_DATA_HOME: "/tmp/feedcrawl-helm/data",
          ...env,
        },
        maxBuffer: 32 * 1024 * 1024,
        timeout: 120_000,
      },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== "number") return reject(err);
        resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
      },
    );
  });
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

/** `--set`/`--set-json` style flags from a values object (each key as JSON). */
function valueFlags(values: Record<string, unknown>): string[] {
  return Object.entries(values).flatMap(([key, value]) => ["--set-json", `${key}=${JSON.stringify(value)}`]);
}

/** `helm template` with the given values; throws with helm's stderr when it fails. */
export async function render(values: Record<string, unknown> = {}, release = "fc"): Promise<K8sObject[]> {
  const result = await helm(["template", release, chartDir, "--namespace", "feedcrawl-system", ...valueFlags(values)]);
  if (result.code !== 0) throw new Error(`helm template failed (${result.code}): ${result.stderr}`);
  return parseAllDocuments(result.stdout)
    .map((doc) => doc.toJS() as K8sObject | null)
    .filter((obj): obj is K8sObject => obj !== null);
}

/** `helm template` expected to fail: returns its exit code and stderr. */
export async function renderError(values: Record<string, unknown>): Promise<HelmResult> {
  return helm(["template", "fc", chartDir, "--namespace", "feedcrawl-system", ...valueFlags(values)]);
}

export function find(objects: K8sObject[], kind: string, name?: string, namespace?: string): K8sObject[] {
  return objects.filter(
    (o) =>
      o.kind === kind &&
      (name === undefined || o.metadata.name === name) &&
      (namespace === undefined || o.metadata.namespace === namespace),
  );
}

export function only(objects: K8sObject[], kind: string, name?: string, namespace?: string): K8sObject {
  const found = find(objects, kind, name, namespace);
  if (found.length !== 1) {
    throw new Error(`Expected exactly one ${kind}${name ? ` ${name}` : ""}, found ${found.length}`);
  }
  return found[0] as K8sObject;
}
