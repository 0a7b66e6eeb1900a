// What the operator checks before it starts a runner, beyond what the CRD
// schema and its CEL rules already enforced at admission:
// - the spec's semantics: spec/semantics.ts `semanticErrors` (selectors
//   parse, regexes compile, feeds are consistent, …), the checks
//   `feedcrawl validate` runs beyond the schema, and spec.runner's CEL rules
//   once more (reserved env names, tmpSizeLimit's bounds). Not the TypeBox
//   schema itself: the API server enforced it with the CRD generated from it,
//   and loading TypeBox would cost the operator ~15 MB RSS;
// - referenced Secrets exist and hold the keys the runner/delivery read
//   (never their values: only key names are looked at);
// - the webhook URL is http(s) and, unless ingest.webhook.allowPrivateNetworks,
//   not a literal loopback/private/link-local address (the delivery checks the
//   resolved addresses again at send time).
import net from "node:net";
import type { FieldError } from "../../crds/schema/common.ts";
import type { CrawlJobSpec } from "../../crds/schema/crawljob.ts";
import { FEEDS_REQUIRED_MESSAGE } from "../../crds/schema/names.ts";
import { isAddressAllowed } from "../../net/address-guard.ts";
import { semanticErrors } from "../../spec/semantics.ts";
import { DEFAULT_SECRET_KEY } from "../delivery/kube.ts";
import { proxyCredentialKeys, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY } from "./runner-pod.ts";

/** The Secret's (or ConfigMap's) data keys, or undefined when it does not exist. */
type SecretLookup = (namespace: string, name: string) => Promise<string[] | undefined> | string[] | undefined;
type ConfigMapLookup = SecretLookup;

type ValidationReason =
  | "InvalidSpec"
  | "SecretNotFound"
  | "SecretKeyMissing"
  | "ConfigMapNotFound"
  | "ConfigMapKeyMissing"
  | "InvalidWebhookURL"
  | "PrivateWebhookAddress";

export interface ValidationFailure {
  reason: ValidationReason;
  errors: FieldError[];
  message: string;
}

/** `feedcrawl run` refuses a snapshot without feeds (exit 2): nothing it crawls would be stored. */
const NO_FEEDS: FieldError = { path: "spec.feeds", message: FEEDS_REQUIRED_MESSAGE };

const isLoopbackName = (host: string) => host === "localhost" || host.endsWith(".localhost");

/** Checks the webhook URL's scheme and literal host; returns at most one error. */
export function checkWebhookUrl(
  url: string,
  allowPrivateNetworks: boolean,
): { reason: ValidationReason; error: FieldError } | undefined {
  const path = "spec.ingest.webhook.url";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { reason: "InvalidWebhookURL", error: { path, message: `'${url}' is not an absolute URL` } };
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return { reason: "InvalidWebhookURL", error: { path, message: `scheme ${parsed.protocol} is not http or https` } };
  }
  if (parsed.username || parsed.password) {
    return {
      reason: "InvalidWebhookURL",
      error: { path, message: "must not carry credentials; the webhook is authenticated by its signature" },
    };
  }
  if (allowPrivateNetworks) return undefined;
  const host = parsed.hostname.replace(/^\[|\]$/g, "");
  const literal = net.isIP(host) !== 0;
  if ((literal && !isAddressAllowed(host, false)) || isLoopbackName(host.toLowerCase())) {
    return {
      reason: "PrivateWebhookAddress",
      error: {
        path,
        message: `host ${host} is a loopback/private/link-local address; set spec.ingest.webhook.allowPrivateNetworks: true for in-cluster backends`,
      },
    };
  }
  return undefined;
}

/** Every problem of the CrawlJob, or undefined when it may run. */
export async function validateCrawlJob(
  namespace: string,
  spec: CrawlJobSpec,
  lookupSecret: SecretLookup,
  lookupConfigMap?: ConfigMapLookup,
): Promise<ValidationFailure | undefined> {
  const found: { reason: ValidationReason; error: FieldError }[] = [];
  for (const error of semanticErrors(spec as unknown as Record<string, unknown>))
    found.push({ reason: "InvalidSpec", error });
  // The CRD's CEL rule refuses it at admission; this catches objects stored before that rule.
  if (!spec.feeds || Object.keys(spec.feeds).length === 0) found.push({ reason: "InvalidSpec", error: NO_FEEDS });

  const webhook = spec.ingest?.webhook;
  if (webhook) {
    const urlProblem = checkWebhookUrl(webhook.url, webhook.allowPrivateNetworks === true);
    if (urlProblem) found.push(urlProblem);
  }

  const secretRefs = secretRefsOf(spec);
  for (const ref of secretRefs) {
    const keys = await lookupSecret(namespace, ref.name);
    if (!keys) {
      found.push({
        reason: "SecretNotFound",
        error: { path: `${ref.path}.name`, message: `Secret ${namespace}/${ref.name} not found` },
      });
      continue;
    }
    const missing = ref.keys.filter((k) => !keys.includes(k));
    if (missing.length > 0) {
      found.push({
        reason: "SecretKeyMissing",
        error: {
          path: ref.path,
          message: `Secret ${namespace}/${ref.name} has no key ${missing.map((k) => `'${k}'`).join(", ")}`,
        },
      });
    }
  }
  const moduleRef = spec.spider?.moduleConfigMapRef;
  if (moduleRef && lookupConfigMap) {
    const problem = await checkModuleConfigMap(namespace, moduleRef, lookupConfigMap);
    if (problem) found.push(problem);
  }

  if (found.length === 0) return undefined;
  const errors = found.map((f) => f.error);
  return {
    reason: found[0]!.reason,
    errors,
    message: errors.map((e) => `${e.path}: ${e.message}`).join("; "),
  };
}

/** spider.moduleConfigMapRef: the ConfigMap exists and holds the key (only key names are looked at). */
async function checkModuleConfigMap(
  namespace: string,
  ref: { name: string; key: string },
  lookup: ConfigMapLookup,
): Promise<{ reason: ValidationReason; error: FieldError } | undefined> {
  const path = "spec.spider.moduleConfigMapRef";
  const keys = await lookup(namespace, ref.name);
  if (!keys)
    return {
      reason: "ConfigMapNotFound",
      error: { path: `${path}.name`, message: `ConfigMap ${namespace}/${ref.name} not found` },
    };
  if (!keys.includes(ref.key))
    return {
      reason: "ConfigMapKeyMissing",
      error: { path: `${path}.key`, message: `ConfigMap ${namespace}/${ref.name} has no key '${ref.key}'` },
    };
  return undefined;
}

/** Every Secret the spec refers to, with the keys the runner or the delivery read. */
export function secretRefsOf(spec: CrawlJobSpec): { path: string; name: string; keys: string[] }[] {
  const webhook = spec.ingest?.webhook;
  const secretRefs: { path: string; name: string; keys: string[] }[] = [];
  const s3Ref = spec.storage?.s3?.credentialsSecretRef;
  if (s3Ref) {
    secretRefs.push({
      path: "spec.storage.s3.credentialsSecretRef",
      name: s3Ref.name,
      keys: [S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY],
    });
  }
  if (webhook) {
    secretRefs.push({
      path: "spec.ingest.webhook.signingSecretRef",
      name: webhook.signingSecretRef.name,
      keys: [webhook.signingSecretRef.key ?? DEFAULT_SECRET_KEY],
    });
  }
  const proxyRef = spec.spider?.settings?.proxy?.credentialsSecretRef;
  if (proxyRef) {
    secretRefs.push({
      path: "spec.spider.settings.proxy.credentialsSecretRef",
      name: proxyRef.name,
      keys: proxyCredentialKeys({ spec }).map((k) => k.key),
    });
  }
  return secretRefs;
}
