// One webhook POST through undici, classified into an AttemptOutcome.
// Redirects are not followed (Standard Webhooks: a 3xx is a failure; update
// the URL instead), the whole exchange has one deadline, and only the first
// bytes of an error body are kept for status.lastError.
import type { Dispatcher } from "undici";
import { parseRetryAfter } from "../../lib/retry-after.ts";
import { request, errors as undiciErrors } from "../../lib/undici.ts";
import type { AttemptOutcome } from "./state.ts";

interface WebhookRequest {
  url: string;
  body: string;
  headers: Record<string, string>;
  timeoutMs: number;
  /** The dispatcher to connect with (dispatchers.ts: the address guard with the allowed networks). */
  dispatcher: Dispatcher;
  /**
   * Keep the first bytes of an error answer for status.lastError. False when
   * the webhook may be on a private network: what an internal service
   * answers must not reach the job author through the CrawlFeed's status.
   */
  quoteBody: boolean;
  /** Appended to an address-guard refusal: which setting refused it. */
  blockedHint?: string;
  /** Aborts the POST (the dispatcher closing), on top of the timeout. */
  signal?: AbortSignal;
}

interface WebhookSenderOptions {
  userAgent?: string;
  now?: () => Date;
}

const ERROR_BODY_BYTES = 256;

/** The URL without credentials, query or fragment: safe for logs, status and events. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "<invalid URL>";
  }
}

/** What an HTTP answer means for the delivery (DESIGN.md's webhook contract). */
export function classifyResponse(code: number, retryAfterMs: number | undefined, detail: string): AttemptOutcome {
  if (code >= 200 && code < 300) return { kind: "delivered", code };
  if (code === 409) return { kind: "conflict", code: 409 };
  const error = `HTTP ${code}${detail ? `: ${detail}` : ""}`;
  if (code === 408 || code === 429 || code >= 500) {
    return retryAfterMs === undefined ? { kind: "retry", code, error } : { kind: "retry", code, error, retryAfterMs };
  }
  if (code >= 300 && code < 400)
    return {
      kind: "reject",
      code,
      error: `${error} (redirects are not followed: point the webhook URL at the final address)`,
    };
  return { kind: "reject", code, error };
}

/** The address guard refused the address. */
function isBlocked(err: unknown): boolean {
  const e = err as { code?: string; name?: string };
  return e?.code === "EADDRBLOCKED" || e?.name === "AddressBlockedError";
}

/** Errors that retrying cannot fix: a refused address or a malformed request. */
function isPermanent(err: unknown): boolean {
  const e = err as { code?: string };
  return isBlocked(err) || e?.code === "ERR_INVALID_URL" || e?.code === "UND_ERR_INVALID_ARG";
}

function errorText(err: unknown, url: string): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } };
  const parts = [e?.code ?? e?.name ?? "Error", e?.message ?? String(err)];
  if (e?.cause?.message) parts.push(`(${e.cause.code ?? ""} ${e.cause.message})`.replace("( ", "("));
  // Never echo the raw URL: it may carry credentials or tokens.
  return parts.join(": ").replaceAll(url, describeUrl(url)).slice(0, 1024);
}

async function readSnippet(body: Dispatcher.ResponseData["body"]): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size >= ERROR_BODY_BYTES) break;
    }
  } catch {
    // The body is only informational.
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks).subarray(0, ERROR_BODY_BYTES).toString("utf8").replace(/\s+/g, " ").trim();
}

/** Reads nothing of an error body we must not quote; says so instead. */
async function discard(body: Dispatcher.ResponseData["body"]): Promise<string> {
  body.on("error", () => {}); // destroying an unread body reports an abort: expected
  body.destroy();
  return "(response body not recorded: the webhook may be on a private network)";
}

export class WebhookSender {
  readonly #userAgent: string;
  readonly #now: () => Date;

  constructor(options: WebhookSenderOptions = {}) {
    this.#userAgent = options.userAgent ?? "feedcrawl-operator/0.1";
    this.#now = options.now ?? (() => new Date());
  }

  /** POSTs once; never throws. The caller (the delivery dispatcher) holds the host slot. */
  async post(req: WebhookRequest): Promise<AttemptOutcome> {
    try {
      const u = new URL(req.url);
      if (u.protocol !== "http:" && u.protocol !== "https:") {
        return { kind: "reject", error: `${describeUrl(req.url)} is not an http(s) URL` };
      }
    } catch {
      return { kind: "reject", error: "the webhook URL is not a valid URL" };
    }
    return this.#request(req);
  }

  async #request(req: WebhookRequest): Promise<AttemptOutcome> {
    try {
      const res = await request(req.url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": this.#userAgent, ...req.headers },
        body: req.body,
        dispatcher: req.dispatcher,
        signal: req.signal
          ? AbortSignal.any([AbortSignal.timeout(req.timeoutMs), req.signal])
          : AbortSignal.timeout(req.timeoutMs),
        headersTimeout: req.timeoutMs,
        bodyTimeout: req.timeoutMs,
      });
      const code = res.statusCode;
      if (code >= 200 && code < 300) {
        await res.body.dump().catch(() => undefined);
        return { kind: "delivered", code };
      }
      const snippet = req.quoteBody ? await readSnippet(res.body) : await discard(res.body);
      return classifyResponse(code, parseRetryAfter(res.headers["retry-after"], this.#now()), snippet);
    } catch (err) {
      if (isPermanent(err)) {
        const hint = req.blockedHint && isBlocked(err) ? `; ${req.blockedHint}` : "";
        return { kind: "reject", error: errorText(err, req.url) + hint };
      }
      const timedOut =
        (err as { name?: string })?.name === "TimeoutError" ||
        err instanceof undiciErrors.HeadersTimeoutError ||
        err instanceof undiciErrors.BodyTimeoutError;
      const text = timedOut ? `Timed out after ${req.timeoutMs} ms` : errorText(err, req.url);
      return { kind: "retry", error: text };
    }
  }
}
