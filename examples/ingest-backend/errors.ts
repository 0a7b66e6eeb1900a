// Every way an ingest can end, as the HTTP status the operator acts on:
// 2xx and 409 → Delivered; 5xx → retried with backoff; other 4xx → Failed at once.

export class IngestError extends Error {
  override name = "IngestError";
  readonly status: number;
  constructor(status: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.status = status;
  }
}

/** 401: missing, wrong or stale signature (the operator will not retry: fix the secret). */
export const unauthorized = (message: string) => new IngestError(401, message);
/** 400: the body is not a webhook event we understand. */
export const badRequest = (message: string) => new IngestError(400, message);
/** 409: this webhook-id (or this feed) is already loaded: the operator marks it Delivered. */
export const alreadyIngested = (message: string) => new IngestError(409, message);
/** 413: a body larger than any event the operator sends. */
export const tooLarge = (message: string) => new IngestError(413, message);
/** 422: a well-formed event this backend cannot load (format, scheme), or a file whose data is bad as announced: retrying cannot help. */
export const unprocessable = (message: string) => new IngestError(422, message);
/** 502: the feed object could not be read, or is not the object announced (size, sha256): retry later. */
export const feedUnreadable = (message: string, cause?: unknown) => new IngestError(502, message, { cause });
/** 503: the database could not take the load: retry later. */
export const storeUnavailable = (message: string, cause?: unknown) => new IngestError(503, message, { cause });

/**
 * The file's content is wrong: it does not decompress, decode or parse, or an
 * item is not an object. The message says where (`line 7`, `item 3 (line 12)`,
 * `record 4`). The reader turns it into 422 when the stored object is exactly
 * what the webhook announced (retrying cannot help), else into 502.
 */
export class FeedDataError extends Error {
  override name = "FeedDataError";
}
