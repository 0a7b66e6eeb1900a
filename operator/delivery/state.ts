// The delivery state machine of one webhook event (a CrawlFeed's feed.closed,
// or a CrawlJob's crawl.completed), as pure functions over the persisted
// status: the caller reads the status, asks `decide`, persists the claim
// (`Sending`) before the POST, and persists `afterAttempt`'s result after it.
import type { DeliveryStatus } from "../../crds/schema/crawlfeed.ts";
import { type BackoffPolicy, backoffDelayMs } from "../../lib/backoff.ts";

/** Webhook retries: full jitter below 5 s, 10 s, 20 s … up to 1 h ceilings: 12 attempts span about 2.5 h at most. */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 5_000, capMs: 3_600_000, minMs: 1_000 };

interface DeliveryPolicy {
  maxAttempts: number;
  backoff: BackoffPolicy;
}

/** What one POST attempt came to, as the sender classified it. */
export type AttemptOutcome =
  /** 2xx. */
  | { kind: "delivered"; code: number }
  /** 409: the backend already ingested this webhook-id. */
  | { kind: "conflict"; code: 409 }
  /** 408, 429, 5xx, timeout, connection error: try again later. */
  | { kind: "retry"; code?: number; error: string; retryAfterMs?: number }
  /** Any other answer (other 4xx, 3xx), or a refused address: retrying cannot help. */
  | { kind: "reject"; code?: number; error: string };

type Decision =
  /** POST now, after persisting `claim` (state Sending). `resumed`: a previous attempt's outcome was lost. */
  | { action: "send"; claim: DeliveryStatus; resumed: boolean }
  /** Not due yet: come back in `delayMs`. */
  | { action: "wait"; delayMs: number }
  /** Delivered or Failed: nothing to do. */
  | { action: "done" }
  /** Give up without another POST: persist `status`. */
  | { action: "fail"; status: DeliveryStatus };

function claim(previous: DeliveryStatus | undefined, lastError?: string): DeliveryStatus {
  const next: DeliveryStatus = { state: "Sending", attempts: (previous?.attempts ?? 0) + 1 };
  const error = lastError ?? previous?.lastError;
  if (error) next.lastError = error;
  if (previous?.lastResponseCode !== undefined) next.lastResponseCode = previous.lastResponseCode;
  return next;
}

/** What to do with a delivery in `current` state at `now`. */
export function decide(current: DeliveryStatus | undefined, now: Date, maxAttempts: number): Decision {
  if (!current) return { action: "send", claim: claim(undefined), resumed: false };
  switch (current.state) {
    case "Delivered":
    case "Failed":
      return { action: "done" };
    case "Pending": {
      const due = current.nextAttemptAt ? Date.parse(current.nextAttemptAt) : Number.NaN;
      if (!Number.isNaN(due) && due > now.getTime()) return { action: "wait", delayMs: due - now.getTime() };
      if (current.attempts >= maxAttempts) {
        return {
          action: "fail",
          status: { ...current, state: "Failed", nextAttemptAt: undefined, lastError: gaveUp(current) },
        };
      }
      return { action: "send", claim: claim(current), resumed: false };
    }
    case "Sending": {
      // Found in Sending by a process that is not sending it: the process that
      // claimed it died (or lost its lease) between the claim and the result, so
      // the POST may or may not have reached the backend. Send again under the
      // same webhook-id (at-least-once). An interrupted attempt is not a failed
      // one, so the last allowed attempt may be redone once.
      const interrupted = `Attempt ${current.attempts} was interrupted before its outcome was recorded`;
      if (current.attempts > maxAttempts) {
        return {
          action: "fail",
          status: { ...current, state: "Failed", lastError: `${interrupted}; no attempts left` },
        };
      }
      return { action: "send", claim: claim(current, interrupted), resumed: true };
    }
  }
}

function gaveUp(status: DeliveryStatus): string {
  const last = status.lastError ? `: ${status.lastError}` : "";
  return `Gave up after ${status.attempts} attempts${last}`.slice(0, 4096);
}

/** The status to persist after the POST of `sending` (the persisted claim) came to `outcome`. */
export function afterAttempt(
  sending: DeliveryStatus,
  outcome: AttemptOutcome,
  now: Date,
  policy: DeliveryPolicy,
  random: () => number = Math.random,
): DeliveryStatus {
  const attempts = sending.attempts;
  switch (outcome.kind) {
    case "delivered":
    case "conflict":
      return { state: "Delivered", attempts, lastResponseCode: outcome.code, deliveredAt: now.toISOString() };
    case "reject":
      return withCode({ state: "Failed", attempts, lastError: outcome.error.slice(0, 4096) }, outcome.code);
    case "retry": {
      if (attempts >= policy.maxAttempts) {
        return withCode(
          { state: "Failed", attempts, lastError: gaveUp({ ...sending, lastError: outcome.error }) },
          outcome.code,
        );
      }
      const delayMs = outcome.retryAfterMs ?? backoffDelayMs(attempts, policy.backoff, random);
      return withCode(
        {
          state: "Pending",
          attempts,
          lastError: outcome.error.slice(0, 4096),
          nextAttemptAt: new Date(now.getTime() + delayMs).toISOString(),
        },
        outcome.code,
      );
    }
  }
}

function withCode(status: DeliveryStatus, code: number | undefined): DeliveryStatus {
  if (code !== undefined) status.lastResponseCode = code;
  return status;
}

/**
 * Waiting for the signing Secret: a configuration problem, not an attempt, so
 * no attempt is used up; the next look is on the backoff schedule.
 */
export function deferred(
  current: DeliveryStatus | undefined,
  error: string,
  now: Date,
  backoff: BackoffPolicy,
  random: () => number,
): DeliveryStatus {
  const attempts = current?.attempts ?? 0;
  const delayMs = backoffDelayMs(Math.max(attempts, 1), backoff, random);
  const waiting: DeliveryStatus = {
    state: "Pending",
    attempts,
    lastError: error,
    nextAttemptAt: new Date(now.getTime() + delayMs).toISOString(),
  };
  return withCode(waiting, current?.lastResponseCode);
}

/** Back to the start, for the redeliver annotation: a fresh attempt budget. */
export function redeliver(current: DeliveryStatus | undefined): DeliveryStatus {
  const next: DeliveryStatus = { state: "Pending", attempts: 0 };
  if (current?.lastResponseCode !== undefined) next.lastResponseCode = current.lastResponseCode;
  return next;
}
