// Bounded waiting for shutdown steps: wait for a promise, but not forever.

/**
 * Whether `promise` settled (fulfilled or rejected) within `ms`; it keeps
 * running either way. Callers handle its rejection themselves.
 */
export async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const settled = promise.then(
    () => true,
    () => true,
  );
  if (ms === Number.POSITIVE_INFINITY) return settled;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([settled, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
