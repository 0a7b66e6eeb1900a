// The API client's errors: a failed call as a KubeApiError (HTTP status and
// Status reason), the predicates callers branch on, and a secret-free
// description for logs, status and events.

/** A failed API call: `code` is the HTTP status, `reason` the Status reason (NotFound, Conflict, …). */
export class KubeApiError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly details: unknown;
  constructor(code: number, reason: string, message: string, details?: unknown) {
    super(message);
    this.name = "KubeApiError";
    this.code = code;
    this.reason = reason;
    this.details = details;
  }
}

export const isNotFound = (err: unknown) => err instanceof KubeApiError && err.code === 404;
export const isConflict = (err: unknown) => err instanceof KubeApiError && err.code === 409;
export const isAlreadyExists = (err: unknown) => err instanceof KubeApiError && err.reason === "AlreadyExists";
export const isGone = (err: unknown) => err instanceof KubeApiError && err.code === 410;

/** A short, secret-free description of an error for logs, status and events. */
export function describeError(err: unknown): string {
  if (err instanceof KubeApiError) return `${err.code} ${err.reason}: ${err.message}`;
  if (err instanceof Error) {
    // undici's "fetch failed" hides the reason (ECONNREFUSED, a TLS error, …) in `cause`.
    const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
    const detail = cause?.code ?? cause?.message;
    return detail ? `${err.message}: ${detail}` : err.message;
  }
  return String(err);
}
