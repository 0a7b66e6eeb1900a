// Exponential backoff, the one formula every retry loop uses: the ceiling
// doubles per failed attempt up to a cap, and jitter spreads many clients'
// retries apart (AWS Architecture Blog, "Exponential Backoff And Jitter").

export interface BackoffPolicy {
  /** Ceiling of the first retry's delay; doubles per attempt. */
  baseMs: number;
  /** Largest ceiling. */
  capMs: number;
  /** Floor of every delay, so a full-jitter draw near 0 never becomes a hot loop (default 0). */
  minMs?: number;
  /**
   * `full` (default): uniform in [0, ceiling) — best spread for many clients;
   * `equal`: uniform in [ceiling/2, ceiling) — never much shorter than planned;
   * `none`: the ceiling itself (client-go's per-item rate limiter).
   */
  jitter?: "full" | "equal" | "none";
}

/** The delay before the retry that follows failed attempt number `attempt` (1-based). */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 40);
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** exponent);
  const jitter = policy.jitter ?? "full";
  const delay =
    jitter === "none" ? ceiling : jitter === "equal" ? ceiling / 2 + (random() * ceiling) / 2 : random() * ceiling;
  return Math.max(policy.minMs ?? 0, Math.floor(delay));
}
