// One HTTP exchange with undici: no automatic redirects (the crawler re-checks
// every hop), a deadline for the whole exchange, and a size limit enforced on
// the *decoded* body so compression bombs stop at the limit.
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import { type Dispatcher, request } from "undici";
import { AddressBlockedError } from "../net/address-guard.ts";

export type DownloadErrorKind =
  | "timeout"
  | "connection"
  | "dns"
  | "tls"
  | "addressBlocked"
  | "responseTooLarge"
  | "decoding"
  | "invalidUrl"
  | "other";

const RETRYABLE = new Set<DownloadErrorKind>(["timeout", "connection", "dns"]);

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
  /** Decoded body limit in bytes. */
  maxBytes: number;
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
}

export const ACCEPT_ENCODING =
  typeof zlib.createZstdDecompress === "function" ? "gzip, deflate, br, zstd" : "gzip, deflate, br";

function decoderFor(encoding: string, url: string): NodeJS.ReadWriteStream | null {
  switch (encoding) {
    case "gzip":
    case "x-gzip":
      return zlib.createGunzip();
    case "deflate":
      return zlib.createInflate();
    case "br":
      return zlib.createBrotliDecompress();
    case "zstd":
      if (typeof zlib.createZstdDecompress === "function") return zlib.createZstdDecompress();
      break;
    case "identity":
    case "":
      return null;
  }
  throw new DownloadError("decoding", url, `Unsupported content-encoding '${encoding}'`);
}

function classify(err: unknown, url: string, timeoutMs: number): DownloadError {
  if (err instanceof DownloadError) return err;
  const e = err as { name?: string; code?: string; message?: string; cause?: unknown };
  const blocked =
    err instanceof AddressBlockedError ? err : e?.cause instanceof AddressBlockedError ? e.cause : undefined;
  if (blocked) return new DownloadError("addressBlocked", url, `Refused to connect: ${blocked.message}`, blocked);
  const code = e?.code ?? "";
  const msg = e?.message ?? String(err);
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

/** Performs one request. Throws DownloadError. */
export async function fetchOnce(url: string, opts: FetchOptions): Promise<FetchResult> {
  const signal = AbortSignal.timeout(opts.timeoutMs);
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
  if (!opts.truncate && encodings.length === 0 && Number.isFinite(declared) && declared > opts.maxBytes) {
    res.body.destroy();
    const err = new DownloadError(
      "responseTooLarge",
      url,
      `Response of ${declared} bytes is larger than maxResponseBytes ${opts.maxBytes}`,
    );
    err.decodedBytes = 0;
    throw err;
  }

  let wireBytes = 0;
  let decoded = 0;
  let truncated = false;
  const chunks: Buffer[] = [];
  try {
    if (encodings.length > 5)
      throw new DownloadError("decoding", url, `Too many content-encodings (${encodings.length})`);
    const decoders = encodings
      .reverse()
      .map((e) => decoderFor(e, url))
      .filter((d): d is NodeJS.ReadWriteStream => d !== null);
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
    const collect = async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) {
        if (decoded + chunk.length > opts.maxBytes) {
          if (opts.truncate) {
            chunks.push(chunk.subarray(0, opts.maxBytes - decoded));
            decoded = opts.maxBytes;
            truncated = true;
            return;
          }
          decoded += chunk.length;
          const err = new DownloadError(
            "responseTooLarge",
            url,
            `Decoded body passed maxResponseBytes ${opts.maxBytes} (${wireBytes} bytes on the wire)`,
          );
          err.decodedBytes = decoded;
          throw err;
        }
        decoded += chunk.length;
        chunks.push(chunk);
      }
    };
    await pipeline([res.body as Readable, countWire, ...decoders, collect] as never, { signal });
  } catch (err) {
    res.body.destroy();
    // Truncation ends the pipeline early on purpose; what was kept is the answer.
    if (!truncated) throw classify(err, url, opts.timeoutMs);
  }
  return { ...base, body: Buffer.concat(chunks, decoded), wireBytes, truncated };
}
