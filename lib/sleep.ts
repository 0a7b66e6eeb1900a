// An abortable sleep that never leaks its abort listener.

/**
 * Resolves after `ms`, or early (resolving, not rejecting) when `signal`
 * aborts: retry loops check their own stop condition after waking.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
