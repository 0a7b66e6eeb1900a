// The operator's Prometheus metrics (prom-client), served on /metrics.
// Shapes mirror controller-runtime's (reconcile totals/errors/durations per
// controller, work queue depth/adds/retries) under the `feedcrawl_` prefix, so
// a controller-runtime dashboard translates by renaming the prefix.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "feedcrawl_operator_" });

/** What each metric counts (its HELP line). */
const HELP: Record<string, string> = {
  feedcrawl_reconcile_total:
    "Reconciles per controller and result (success, requeue_after, error, terminal: not retried, aborted: stopped by shutdown or a lost Lease).",
  feedcrawl_reconcile_errors_total: "Reconciles that returned an error (retried or terminal), per controller.",
  feedcrawl_reconcile_time_seconds: "Time per reconcile, per controller.",
  feedcrawl_workqueue_depth: "Keys waiting in the work queue (ready or delayed), per queue.",
  feedcrawl_workqueue_adds_total: "Keys added to the work queue, per queue.",
  feedcrawl_workqueue_retries_total: "Keys re-added after an error (rate limited), per queue.",
  feedcrawl_informer_relists_total: "Full lists per informer and cause (start, expired, resync, stall, error).",
  feedcrawl_leader_election_master_status:
    "1 when this process holds the leader Lease (or runs without leader election), else 0.",
  feedcrawl_webhook_deliveries_total: "Webhook delivery attempts per outcome (delivered, retry, failed, conflict).",
  feedcrawl_delivery_latency_seconds: "Seconds from a feed file's close (spec.closedAt) to the webhook's 2xx.",
};

const counter = <L extends string>(name: string, labelNames: readonly L[]) =>
  new Counter<L>({ name, help: HELP[name]!, labelNames, registers: [registry] });
const gauge = <L extends string>(name: string, labelNames: readonly L[]) =>
  new Gauge<L>({ name, help: HELP[name]!, labelNames, registers: [registry] });
const histogram = <L extends string>(name: string, labelNames: readonly L[], buckets: number[]) =>
  new Histogram<L>({ name, help: HELP[name]!, labelNames, buckets, registers: [registry] });

export const reconcileTotal = counter("feedcrawl_reconcile_total", ["controller", "result"]);
export const reconcileErrors = counter("feedcrawl_reconcile_errors_total", ["controller"]);
export const reconcileDuration = histogram(
  "feedcrawl_reconcile_time_seconds",
  ["controller"],
  [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
);
export const workqueueDepth = gauge("feedcrawl_workqueue_depth", ["name"]);
export const workqueueAdds = counter("feedcrawl_workqueue_adds_total", ["name"]);
export const workqueueRetries = counter("feedcrawl_workqueue_retries_total", ["name"]);
export const informerRelists = counter("feedcrawl_informer_relists_total", ["resource", "cause"]);
export const leaderStatus = gauge("feedcrawl_leader_election_master_status", ["name"]);
/** Incremented by operator/delivery: one per webhook POST outcome. */
export const webhookDeliveries = counter("feedcrawl_webhook_deliveries_total", ["outcome"]);
/** Observed by operator/delivery: from the feed's closedAt to the backend's 2xx. */
export const deliveryLatencySeconds = histogram(
  "feedcrawl_delivery_latency_seconds",
  [],
  [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600],
);
