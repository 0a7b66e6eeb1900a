// Reconcile errors the controller treats differently from "try again".
//
// A TerminalError (controller-runtime's reconcile.TerminalError) says that
// retrying cannot help until the object changes: the controller logs it once,
// counts it as result "terminal", forgets the key's failures and does not
// requeue it. The next change of the object (an informer event) reconciles it
// again as usual.

export class TerminalError extends Error {
  /** A CamelCase reason for an Event or a condition (e.g. "NotOwned"). */
  readonly reason: string;

  constructor(message: string, options: { reason?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TerminalError";
    this.reason = options.reason ?? "TerminalError";
  }
}

export function isTerminalError(err: unknown): err is TerminalError {
  return err instanceof TerminalError;
}
