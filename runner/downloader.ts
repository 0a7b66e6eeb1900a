// One HTTP exchange with undici: no automatic redirects (the crawler re-checks
// every hop), a deadline for the whole exchange, a size limit enforced on the
// *decoded* body so compression bombs stop at the limit, and a process-wide
// budget for the decoded bytes all responses hold while downloading. Every
// failure is a rejected DownloadError naming the URL; nothing escapes as an
// 'error' event.
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import type { Dispatcher } from "undici";
import { request } from "../lib/undici.ts";
import { AddressBlockedError } from "../net/address-guard.ts";

export type DownloadErrorKind =
  | "timeout"
  | "connection"
  | "dns"
  | "tls"
  | "addressBlocked"
  | "responseTooLarge"
  | "decoding"
  | "memoryBudget"
  | "proxy"
  | "invalidUrl"
  | "other";

// memoryBudget is transient: the responses holding the budget finish soon.
// proxy: another attempt may go through another proxy of the rotation.
const RETRYABLE = new Set<DownloadErrorKind>(["timeout", "connection", "dns", "memoryBudget", "proxy"]);

/**
 * The decoded-body limit when the caller gives none (`maxResponseBytes`'
 * default): Scrapy's DOWNLOAD_WARNSIZE, far above any real HTML page and small
 * enough that parsing it cannot exhaust the heap.
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024;
/** Decoded bytes all responses of the process may hold at once while downloading. */
export const DEFAULT_IN_FLIGHT_BYTES = 128 * 1024 * 1024;
/** Each response's first MiB is not drawn from the budget, so ordinary pages never fail because of big ones. */
export const FREE_BYTES_PER_RESPONSE = 1024 * 1024;

/**
 * Decoded bytes held by responses being downloaded. A response that would take
 * the total past the budget fails at once (`memoryBudget`, retried) rather than
 * waiting: responses that each hold part of the budget could otherwise wait on
 * one another until their timeouts. A response limit above the budget raises it
 * for that response, so one response can always reach its own limit.
 */
export class ByteBudget {
  readonly size: number;
  #used = 0;
  constructor(size: number) {
    if (!Number.isSafeInteger(size) || size < 1) throw new Error(`Byte budget must be a positive integer, got ${size}`);
    this.size = size;
  }
  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }
  /** Takes `n` bytes if the total stays within max(size, `ceiling`). */
  take(n: number, ceiling = 0): boolean {
    if (this.#used + n > Math.max(this.size, ceiling)) return false;
    this.#used += n;
    return true;
  }
  give(n: number): void {
    this.#used = Math.max(0, this.#used - n);
  }
}

/** The budget fetchOnce uses unless told otherwise: memory is per process. */
export const inFlightBudget = new ByteBudget(DEFAULT_IN_FLIGHT_BYTES);

export class DownloadError extends Error {
  readonly kind: DownloadErrorKind;
  readonly url: string;
  readonly retryable: boolean;
  /** For responseTooLarge: decoded bytes read before the download was cut. */
  decodedBytes?: number;
  constructor(kind: DownloadErrorKind, url: string, message: string, cause?: unknown) {
    super(`${message} (${url})`, cause === undefined ? undefined : { cause });
    this.name = "DownloadError";
    this.kind = kind;
    this.url = url;
    this.retryable = RETRYABLE.has(kind);
  }
}

export interface FetchOptions {
  dispatcher: Dispatcher;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
  /** Decoded body limit in bytes (default DEFAULT_MAX_RESPONSE_BYTES). */
  maxBytes?: number;
  /** Where the decoded bytes in flight are counted (default: the process-wide `inFlightBudget`). */
  budget?: ByteBudget;
  /** Over the limit: keep the first maxBytes instead of failing (robots.txt). */
  truncate?: boolean;
  /** Whether to read the body for this content type (false: discard it unread). */
  wantBody?: (contentType: string, status: number) => boolean;
}

export interface FetchResult {
  url: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  contentType: string;
  /** The decoded body; undefined when `wantBody` declined it or for redirects. */
  body?: Buffer;
  /** The Location of a 3xx answer, resolved against the URL. */
  location?: string;
  /** Bytes received on the wire (before decoding). */
  wireBytes: number;
  truncated: boolean;
  /** Time to response headers, in ms (AutoThrottle's latency). */
  latencyMs: number;
  /** Replayed from the HTTP cache (runner/http-cache.ts): no request was made. */
  fromCache?: boolean;
}

export const ACCEPT_ENCODING =
  typeof zlib.createZstdDecompress === "function" ? "gzip, deflate, br, zstd" : "gzip, deflate, br";

const DECODERS: Record<string, (() => NodeJS.ReadWriteStream) | undefined> = {
  gzip: () => zlib.createGunzip(),
  "x-gzip": () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
  ...(typeof zlib.createZstdDecompress === "function" ? { zstd: () => zlib.createZstdDecompress() } : {}),
};
const MAX_ENCODINGS = 5;
/** A header value as quoted in a message: a hostile one can be kilobytes long. */
const clip = (s: string) => (s.length > 100 ? `${s.slice(0, 100)}…` : s);

/** The decoders for a Content-Encoding list, outermost first; throws before creating any if one is unknown. */
function decodersFor(encodings: string[], url: string): NodeJS.ReadWriteStream[] {
  if (encodings.length > MAX_ENCODINGS)
    throw new DownloadError(
      "decoding",
      url,
      `Too many content-encodings (${encodings.length}, at most ${MAX_ENCODINGS}): '${clip(encodings.join(", "))}'`,
    );
  const unknown = encodings.find((e) => !Object.hasOwn(DECODERS, e));
  if (unknown !== undefined)
    throw new DownloadError("decoding", url, `Unsupported content-encoding '${clip(unknown)}'`);
  return encodings.toReversed().map((e) => (DECODERS[e] as () => NodeJS.ReadWriteStream)());
}

function classify(err: unknown, url: string, timeoutMs: number): DownloadError {
  if (err instanceof DownloadError) return err;
  const e = err as { name?: string; code?: string; message?: string; cause?: unknown };
  const blocked =
    err instanceof AddressBlockedError ? err : e?.cause instanceof AddressBlockedError ? e.cause : undefined;
  if (blocked) return new DownloadError("addressBlocked", url, `Refused to connect: ${blocked.message}`, blocked);
  const code = e?.code ?? "";
  const msg = e?.message ?? String(err);
  // undici's ProxyAgent: a CONNECT answered with a non-200, a 407, a proxy that could not be reached or verified.
  if (code === "UND_ERR_PRX_TLS" || code === "UND_ERR_PRX_CONN" || /^Proxy (response|Authentication)/.test(msg))
    return new DownloadError("proxy", url, `Proxy failed: ${msg}`, err);
  if (e?.name === "TimeoutError" || e?.name === "AbortError" || code.includes("TIMEOUT") || code === "ETIMEDOUT") {
    return new DownloadError("timeout", url, `Download timed out after ${timeoutMs} ms`, err);
  }
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_FAIL")
    return new DownloadError("dns", url, `DNS lookup failed: ${msg}`, err);
  if (code.startsWith("ERR_TLS") || code.startsWith("ERR_SSL") || code.includes("CERT"))
    return new DownloadError("tls", url, `TLS error: ${msg}`, err);
  if (
    (e as { fromDecoder?: boolean }).fromDecoder ||
    code.startsWith("Z_") ||
    code === "ERR_ZLIB_INITIALIZATION_FAILED"
  )
    return new DownloadError("decoding", url, `Could not decode the body: ${msg}`, err);
  if (code.startsWith("E") || code.startsWith("UND_ERR"))
    return new DownloadError("connection", url, `Connection failed: ${msg}`, err);
  return new DownloadError("other", url, msg, err);
}

/** The body in one Buffer: a body that came in one chunk is not copied. */
const joined = (chunks: Buffer[], length: number): Buffer =>
  chunks.length === 1 && chunks[0]!.length === length ? chunks[0]! : Buffer.concat(chunks, length);

/** Performs one request. Rejects with a DownloadError naming the URL, never anything else. */
export async function fetchOnce(url: string, opts: FetchOptions): Promise<FetchResult> {
  const signal = AbortSignal.timeout(opts.timeoutMs);
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const started = performance.now();
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, {
      dispatcher: opts.dispatcher,
      method: (opts.method ?? "GET") as Dispatcher.HttpMethod,
      headers: { "accept-encoding": ACCEPT_ENCODING, ...opts.headers },
      body: opts.body,
      signal,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    });
  } catch (err) {
    throw classify(err, url, opts.timeoutMs);
  }
  // A body given up unread is destroyed, and undici then emits RequestAbortedError
  // on it a tick later: with no listener that is an uncaught exception (issue 14).
  // Real failures reach us through pipeline() or dump(), not through this listener.
  res.body.on("error", () => {});
  const latencyMs = performance.now() - started;
  const contentType = String(res.headers["content-type"] ?? "").toLowerCase();
  const base = { url, status: res.statusCode, headers: res.headers, contentType, latencyMs };

  const location = res.headers.location;
  if (res.statusCode >= 300 && res.statusCode < 400 && location) {
    await res.body.dump().catch(() => {});
    let target: string | undefined;
    try {
      target = new URL(String(location), url).href;
    } catch {
      target = undefined;
    }
    return { ...base, location: target ?? "", wireBytes: 0, truncated: false };
  }
  if (opts.wantBody && !opts.wantBody(contentType, res.statusCode)) {
    // dump() reads at most 128 KiB before closing the connection.
    await res.body.dump().catch(() => {});
    return { ...base, wireBytes: 0, truncated: false };
  }

  const declared = Number(res.headers["content-length"]);
  const encodings = String(res.headers["content-encoding"] ?? "")
    .toLowerCase()
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s && s !== "identity");
  if (!opts.truncate && encodings.length === 0 && Number.isFinite(declared) && declared > maxBytes) {
    res.body.destroy();
    const err = new DownloadError(
      "responseTooLarge",
      url,
      `Response of ${declared} bytes is larger than maxResponseBytes ${maxBytes}`,
    );
    err.decodedBytes = 0;
    throw err;
  }

  const budget = opts.budget ?? inFlightBudget;
  let wireBytes = 0;
  let decoded = 0;
  let charged = 0; // bytes taken from the budget, given back in finally
  let truncated = false;
  const chunks: Buffer[] = [];
  try {
    const decoders = decodersFor(encodings, url);
    // Mark decoder errors so they are classified as "decoding", not a network failure.
    for (const d of decoders)
      d.on("error", (err: Error) => {
        (err as { fromDecoder?: boolean }).fromDecoder = true;
      });
    const countWire = async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        wireBytes += chunk.length;
        yield chunk;
      }
    };
    /** Takes one decoded chunk; false once truncated (stop reading). */
    const take = (chunk: Buffer): boolean => {
      if (decoded + chunk.length > maxBytes) {
        if (opts.truncate) {
          chunks.push(chunk.subarray(0, maxBytes - decoded));
          decoded = maxBytes;
          truncated = true;
          return false;
        }
        decoded += chunk.length;
        const err = new DownloadError(
          "responseTooLarge",
          url,
          `Decoded body passed maxResponseBytes ${maxBytes} (${wireBytes} bytes on the wire)`,
        );
        err.decodedBytes = decoded;
        throw err;
      }
      const charge = Math.max(0, decoded + chunk.length - FREE_BYTES_PER_RESPONSE) - charged;
      if (charge > 0) {
        if (!budget.take(charge, maxBytes)) {
          throw new DownloadError(
            "memoryBudget",
            url,
            `Decoded body reached ${decoded + chunk.length} bytes while responses in flight hold ${budget.used}: past the in-flight budget of ${Math.max(budget.size, maxBytes)} bytes`,
          );
        }
        charged += charge;
      }
      decoded += chunk.length;
      chunks.push(chunk);
      return true;
    };
    if (decoders.length === 0) {
      // No decoding: read undici's body directly. A stream pipeline costs an
      // AbortController (and its DOMException) per response; undici's own
      // signal and bodyTimeout still end a stalled body.
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        wireBytes += chunk.length;
        if (!take(chunk)) break;
      }
    } else {
      const collect = async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) if (!take(chunk)) return;
      };
      await pipeline([res.body as Readable, countWire, ...decoders, collect] as never, { signal });
    }
    return { ...base, body: joined(chunks, decoded), wireBytes, truncated };
  } catch (err) {
    // Truncation ends the pipeline early on purpose; what was kept is the answer.
    if (truncated) return { ...base, body: joined(chunks, decoded), wireBytes, truncated };
    throw classify(err, url, opts.timeoutMs);
  } finally {
    if (!res.body.destroyed) res.body.destroy();
    budget.give(charged);
  }
}
