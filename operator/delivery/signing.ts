// Standard Webhooks signing (the `standardwebhooks` reference library): the
// signature covers `id.timestamp.body` of the exact bytes sent, with the
// attempt's own timestamp.
import { Webhook } from "standardwebhooks";

const PREFIX = "whsec_";

/**
 * The signer for a Secret value. A value starting with `whsec_` is a Standard
 * Webhooks secret (base64 after the prefix, as Svix and the reference
 * libraries issue them); anything else is used as raw key bytes.
 */
export function webhookSigner(secret: Uint8Array): Webhook {
  const text = Buffer.from(secret).toString("utf8").trim();
  if (text.startsWith(PREFIX)) {
    const base64 = text.slice(PREFIX.length);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) {
      throw new Error("the signing secret starts with whsec_ but the rest is not base64");
    }
    return new Webhook(text);
  }
  if (secret.length === 0) throw new Error("the signing secret is empty");
  return new Webhook(secret, { format: "raw" });
}

/** The three Standard Webhooks headers for one attempt. */
export function signatureHeaders(
  signer: Webhook,
  id: string,
  timestamp: Date,
  body: string,
): { "webhook-id": string; "webhook-timestamp": string; "webhook-signature": string } {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
    "webhook-signature": signer.sign(id, timestamp, body),
  };
}
