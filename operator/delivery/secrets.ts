// The webhook signer of a CrawlJob's signingSecretRef, from a short cache: a
// burst of feeds of one CrawlJob reads its Secret once, and a rotated secret
// is in use within SECRET_CACHE_MS. Failures are not cached.
import type { Webhook } from "standardwebhooks";
import type { SecretKeyRef } from "../../crds/schema/builders.ts";
import { DEFAULT_SECRET_KEY, SigningSecretError } from "./kube.ts";
import { webhookSigner } from "./signing.ts";

/** How long a signing Secret read is reused. */
const SECRET_CACHE_MS = 10_000;

/** Reads the signing key's bytes; throws SigningSecretError when the Secret or key is missing. */
type ReadSigningSecret = (namespace: string, ref: SecretKeyRef) => Promise<Uint8Array>;

export class SigningSecrets {
  readonly #read: ReadSigningSecret;
  readonly #cache = new Map<string, { until: number; bytes: Promise<Uint8Array> }>();

  constructor(read: ReadSigningSecret) {
    this.#read = read;
  }

  /** The signer for `ref`; throws SigningSecretError when the Secret is missing or its value unusable. */
  async signer(namespace: string, ref: SecretKeyRef): Promise<Webhook> {
    const bytes = await this.#bytes(namespace, ref);
    try {
      return webhookSigner(bytes);
    } catch (err) {
      throw new SigningSecretError(
        `Secret ${namespace}/${ref.name} key "${ref.key ?? DEFAULT_SECRET_KEY}": ${(err as Error).message}`,
      );
    }
  }

  #bytes(namespace: string, ref: SecretKeyRef): Promise<Uint8Array> {
    const key = `${namespace}/${ref.name}/${ref.key ?? DEFAULT_SECRET_KEY}`;
    const cached = this.#cache.get(key);
    if (cached && cached.until > Date.now()) return cached.bytes;
    const bytes = this.#read(namespace, ref);
    this.#cache.set(key, { until: Date.now() + SECRET_CACHE_MS, bytes });
    bytes.catch(() => this.#cache.delete(key));
    return bytes;
  }
}
