// What each of a CrawlJob's conditions says, as tables of rules evaluated in
// order (the first whose `when` holds wins), over facts worked out once per
// reconcile. The phase is the Succeeded rule's. See docs/operator.md for the
// table of reasons.
import type { CrawlFeed, DeliveryStatus } from "../../crds/schema/crawlfeed.ts";
import type { Condition, FeedSummary, Phase } from "../../crds/schema/crawljob.ts";
import type { PodProblem } from "./pods.ts";
import type { ValidationFailure } from "./validate.ts";

/** A condition's status, reason and message. */
type Verdict = { status: Condition["status"]; reason: string; message: string };

/** Where the runner is, first match wins (RUNNER_STATES). */
type RunnerState =
  | "Invalid"
  | "StoppedBeforeStart"
  | "SuspendedBeforeStart"
  | "Creating"
  | "Failed"
  | "Complete"
  | "Stopping"
  | "Stopped"
  | "Suspended"
  | "WaitingForPods"
  | "Crawling";

/** What the rules look at. */
export interface Facts {
  validation: ValidationFailure | undefined;
  /** spec.suspend. */
  suspended: boolean;
  /** spec.stop (or a stop already recorded in the status: a stopped job stays stopped). */
  stop: boolean;
  /** The runner Job is suspended (its Suspended condition) and none of its pods is still running or terminating. */
  runnerExited: boolean;
  /** The runner Job's name, when it exists. */
  jobName: string | undefined;
  /** The Job's Failed condition, when it failed. */
  jobFailure: { reason?: string; message?: string } | undefined;
  /** The Job's Complete condition is True. */
  complete: boolean;
  /** The Job's spec.suspend. */
  jobSuspended: boolean;
  /** No pod running (ready), succeeded or failed yet. */
  noPods: boolean;
  /** What the runner pods report (pods.ts): per shard, its newest pod's problem. */
  podProblems: readonly PodProblem[];
  shards: number;
  /** `N of M shards finished, …`. */
  progress: string;
  webhook: boolean;
  onCompletion: boolean;
  completionDelivery: DeliveryStatus | undefined;
  summary: FeedSummary;
  feeds: readonly CrawlFeed[];
}

interface Rule<F> {
  when: (f: F) => boolean;
  say: (f: F) => Verdict;
}

const v = (status: Verdict["status"], reason: string, message: string): Verdict => ({ status, reason, message });
const always = () => true;
const noRunner = (f: Facts) => f.jobName === undefined;
const first = <F, R extends { when: (f: F) => boolean }>(rules: readonly R[], f: F): R => rules.find((r) => r.when(f))!;

const RUNNER_STATES: readonly { state: RunnerState; when: (f: Facts) => boolean }[] = [
  { state: "Invalid", when: (f) => noRunner(f) && f.validation !== undefined },
  { state: "StoppedBeforeStart", when: (f) => noRunner(f) && f.stop },
  { state: "SuspendedBeforeStart", when: (f) => noRunner(f) && f.suspended },
  { state: "Creating", when: noRunner },
  { state: "Failed", when: (f) => f.jobFailure !== undefined },
  { state: "Complete", when: (f) => f.complete },
  { state: "Stopped", when: (f) => f.stop && f.runnerExited },
  { state: "Stopping", when: (f) => f.stop },
  { state: "Suspended", when: (f) => f.jobSuspended },
  { state: "WaitingForPods", when: (f) => f.noPods },
  { state: "Crawling", when: always },
];

const NOT_STARTED = v("Unknown", "NotStarted", "The runner has not started");

/** The Job's podFailurePolicy has one FailJob rule: exit 2, a configuration error (runner-pod.ts). */
const CONFIG_FAILURE = "PodFailurePolicy";
const problemSuffix = (f: Facts) => (f.podProblems[0] ? `: ${f.podProblems[0].reason}` : "");

/** CrawlComplete of a failed Job: its reason (exit 2 → RunnerConfigError), and what the pods said. */
function jobFailed(f: Facts): Verdict {
  const problem = f.podProblems[0];
  const jobMessage = f.jobFailure?.message || `Job ${f.jobName} failed: ${f.progress}`;
  if (f.jobFailure?.reason === CONFIG_FAILURE) {
    const config = f.podProblems.find((p) => p.reason === "RunnerConfigError");
    return v("False", "RunnerConfigError", config?.message ?? jobMessage);
  }
  const detail = problem ? `; ${problem.reason}: ${problem.message}` : "";
  return v("False", f.jobFailure?.reason || "RunnerFailed", `${jobMessage}${detail}`);
}

/** RunnerHealthy: the first runner pod problem (by shard), or none. */
function runnerHealthy(f: Facts): Verdict {
  if (noRunner(f)) return NOT_STARTED;
  const [problem, ...more] = f.podProblems;
  if (problem) {
    const others = more.length > 0 ? ` (and ${more.length} more shard${more.length > 1 ? "s" : ""} with problems)` : "";
    return v("False", problem.reason, `${problem.message}${others}`);
  }
  if (f.jobFailure?.reason === CONFIG_FAILURE) {
    return v("False", "RunnerConfigError", f.jobFailure.message || `Job ${f.jobName} failed: a configuration error`);
  }
  return v("True", "PodsHealthy", "No runner pod reports a problem");
}

/** RunnerReady and CrawlComplete per runner state. */
const RUNNER_CONDITIONS: Record<RunnerState, (f: Facts) => { runnerReady: Verdict; crawlComplete: Verdict }> = {
  Invalid: () => ({
    runnerReady: v("False", "InvalidSpec", "No runner is started for an invalid spec"),
    crawlComplete: NOT_STARTED,
  }),
  StoppedBeforeStart: () => ({
    runnerReady: v("False", "Stopped", "spec.stop is true: no runner is started"),
    crawlComplete: v("True", "Stopped", "spec.stop is true: stopped before a runner started"),
  }),
  SuspendedBeforeStart: () => ({
    runnerReady: v("False", "Suspended", "spec.suspend is true: no runner is started"),
    crawlComplete: NOT_STARTED,
  }),
  Creating: () => ({ runnerReady: v("False", "Creating", "Creating the runner Job"), crawlComplete: NOT_STARTED }),
  Failed: (f) => ({
    runnerReady: v("False", "RunnerFailed", `Job ${f.jobName} failed`),
    crawlComplete: jobFailed(f),
  }),
  Complete: (f) => ({
    runnerReady: v("True", "RunnerFinished", `Job ${f.jobName} completed`),
    crawlComplete: v("True", "RunnerSucceeded", `All ${f.shards} shards finished`),
  }),
  Stopping: (f) => ({
    runnerReady: v(
      "False",
      "Stopping",
      `spec.stop is true: Job ${f.jobName} is suspended and its runners are stopping`,
    ),
    crawlComplete: v("Unknown", "Stopping", `Storing and reporting the open batches; ${f.progress}`),
  }),
  Stopped: (f) => ({
    runnerReady: v("False", "Stopped", `Job ${f.jobName} stopped`),
    crawlComplete: v(
      "True",
      "Stopped",
      `Stopped by spec.stop; everything collected was stored and reported (${f.progress})`,
    ),
  }),
  Suspended: (f) => ({
    runnerReady: v("False", "Suspended", `Job ${f.jobName} is suspended`),
    crawlComplete: v("Unknown", "Suspended", f.progress),
  }),
  WaitingForPods: (f) => ({
    runnerReady: v("False", "WaitingForPods", `Job ${f.jobName} has no running pod yet${problemSuffix(f)}`),
    crawlComplete: v("Unknown", "NotStarted", f.progress),
  }),
  Crawling: (f) => ({
    runnerReady: v("True", "RunnerStarted", `Job ${f.jobName}: ${f.progress}`),
    crawlComplete: v("Unknown", "Crawling", f.progress),
  }),
};

type Judged = Facts & { state: RunnerState };

const pending = (f: Facts) => f.summary.closed - f.summary.delivered - f.summary.failed;
const complete = (f: Facts) => f.complete;
/** The runners are done: the Job completed, or it was stopped and they all exited. */
const ended = (f: Judged) => f.complete || f.state === "Stopped";
const inState = (state: RunnerState) => (f: Judged) => f.state === state;
const completion = (state: DeliveryStatus["state"]) => (f: Facts) =>
  f.onCompletion && f.completionDelivery?.state === state;
const rule = <F>(when: (f: F) => boolean, say: (f: F) => Verdict): Rule<F> => ({ when, say });

// The messages too long for a table row.
const delivered = (f: Facts) =>
  `${f.summary.delivered}/${f.summary.closed} feeds delivered${f.summary.failed ? `, ${f.summary.failed} failed` : ""}`;
const completionFailed = (f: Facts) =>
  `The crawl.completed event failed: ${f.completionDelivery?.lastError ?? "no detail"}`;
const sendingCompletion = (f: Facts) =>
  `Sending the crawl.completed event (${f.completionDelivery?.attempts ?? 0} attempts)`;
const feedsFailed = (f: Facts) => {
  const failed = f.feeds.find((feed) => feed.status?.delivery?.state === "Failed");
  const detail = `CrawlFeed ${failed?.metadata.name}: ${failed?.status?.delivery?.lastError ?? "no detail"}`;
  return `${f.summary.failed} of ${f.summary.closed} feeds failed; ${detail}`;
};
const runnerFailed = (f: Facts) => {
  const { reason, message } = jobFailed(f);
  return `The runner failed: ${reason}: ${message}`;
};
const crawlSucceeded = (f: Facts) =>
  `The crawl finished and ${f.webhook ? `${f.summary.delivered}/${f.summary.closed} feeds were delivered` : "no webhook was configured"}`;

const crawlStopped = (f: Facts) =>
  `The crawl was stopped (spec.stop) and ${f.webhook ? `${f.summary.delivered}/${f.summary.closed} feeds were delivered` : "no webhook was configured"}`;

const FEEDS_DELIVERED: readonly Rule<Judged>[] = [
  rule(inState("StoppedBeforeStart"), () => v("True", "NoFeeds", "Stopped before a runner started: no feed files")),
  rule(noRunner, () => NOT_STARTED),
  rule(
    (f) => !f.webhook,
    (f) => v(ended(f) ? "True" : "Unknown", "NoWebhook", "No ingest webhook is configured"),
  ),
  rule(completion("Delivered"), (f) =>
    v("True", "Delivered", `The crawl.completed event with ${f.summary.closed} feeds was delivered`),
  ),
  rule(completion("Failed"), (f) => v("False", "DeliveryFailed", completionFailed(f))),
  rule(
    (f) => f.onCompletion,
    (f) =>
      ended(f)
        ? v("Unknown", "Delivering", sendingCompletion(f))
        : v("Unknown", "WaitingForRunner", "The crawl.completed event is sent when the runner finishes"),
  ),
  // Failed is final: while the runner still closes feeds, a failed one is
  // reported in the message, not as a phase that would flip back to Running.
  rule(
    (f) => f.summary.failed > 0 && ((ended(f) && pending(f) === 0) || f.jobFailure !== undefined),
    (f) => v("False", "DeliveryFailed", feedsFailed(f)),
  ),
  rule(
    (f) => ended(f) && pending(f) === 0,
    (f) =>
      f.summary.closed === 0
        ? v("True", "NoFeeds", "The crawl closed no feed files")
        : v("True", "AllDelivered", delivered(f)),
  ),
  rule(always, (f) => v("Unknown", "Delivering", `${delivered(f)}${ended(f) ? "" : " so far"}`)),
];

type Delivered = Judged & { delivered: Verdict };
type SucceededRule = Rule<Delivered> & { phase: Phase };
const phased = (when: (f: Delivered) => boolean, phase: Phase, say: (f: Delivered) => Verdict): SucceededRule => ({
  when,
  phase,
  say,
});

/** Succeeded, and with it the phase. */
const SUCCEEDED: readonly SucceededRule[] = [
  phased(inState("Invalid"), "Failed", (f) => v("False", f.validation!.reason, f.validation!.message)),
  phased(inState("StoppedBeforeStart"), "Succeeded", () =>
    v("True", "Stopped", "spec.stop is true: stopped before a runner started"),
  ),
  phased(inState("SuspendedBeforeStart"), "Pending", () => v("Unknown", "Suspended", "spec.suspend is true")),
  phased(inState("Creating"), "Pending", () => v("Unknown", "Pending", "Waiting for the runner")),
  phased(inState("Failed"), "Failed", (f) => v("False", "RunnerFailed", runnerFailed(f))),
  phased(
    (f) => complete(f) && f.delivered.status === "True",
    "Succeeded",
    (f) => v("True", "CrawlSucceeded", crawlSucceeded(f)),
  ),
  phased(
    (f) => f.state === "Stopped" && f.delivered.status === "True",
    "Succeeded",
    (f) => v("True", "Stopped", crawlStopped(f)),
  ),
  phased(
    (f) => f.delivered.status === "False",
    "Failed",
    (f) => v("False", "DeliveryFailed", f.delivered.message),
  ),
  phased(complete, "Ingesting", () => v("Unknown", "Ingesting", "The runner finished; delivering feeds")),
  phased(inState("Stopped"), "Ingesting", () => v("Unknown", "Ingesting", "The runner stopped; delivering feeds")),
  phased(inState("Stopping"), "Running", () =>
    v("Unknown", "Stopping", "spec.stop is true: the runners are storing and reporting their open batches"),
  ),
  phased(inState("Suspended"), "Pending", () => v("Unknown", "Suspended", "The runner is suspended")),
  phased(inState("WaitingForPods"), "Pending", (f) =>
    v("Unknown", "Pending", `Waiting for the runner pods${problemSuffix(f)}`),
  ),
  phased(always, "Running", () => v("Unknown", "Crawling", "The runner is crawling")),
];

/** Every condition's verdict, in the order they are set, and the phase. */
export function judge(facts: Facts): { conditions: [type: string, verdict: Verdict][]; phase: Phase } {
  const judged: Judged = { ...facts, state: first(RUNNER_STATES, facts).state };
  const { runnerReady, crawlComplete } = RUNNER_CONDITIONS[judged.state](judged);
  const feedsDelivered = first(FEEDS_DELIVERED, judged).say(judged);
  const succeeded = first(SUCCEEDED, { ...judged, delivered: feedsDelivered });
  const validated = facts.validation
    ? v("False", facts.validation.reason, facts.validation.message)
    : v("True", "Valid", "The spec passed validation");
  return {
    conditions: [
      ["Validated", validated],
      ["RunnerReady", runnerReady],
      ["RunnerHealthy", runnerHealthy(judged)],
      ["CrawlComplete", crawlComplete],
      ["FeedsDelivered", feedsDelivered],
      ["Succeeded", succeeded.say({ ...judged, delivered: feedsDelivered })],
    ],
    phase: succeeded.phase,
  };
}
