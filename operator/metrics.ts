// The operator's Prometheus metrics (prom-client), served on /metrics.
// Shapes mirror controller-runtime's (reconcile totals/errors/durations per
// controller, work queue depth/adds/retries) under the `feedcrawl_` prefix, so
// a controller-runtime dashboard translates by renaming the prefix.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "feedcrawl_operator_" });

export const reconcileTotal = new Counter({
  name: "feedcrawl_reconcile_total",
  help: "Reconciles per controller and result (success, error, requeue, requeue_after).",
  labelNames: ["controller", "result"] as const,
  registers: [registry],
});

export const reconcileErrors = new Counter({
  name: "feedcrawl_reconcile_errors_total",
  help: "Reconciles that returned an error, per controller.",
  labelNames: ["controller"] as const,
  registers: [registry],
});

export const reconcileDuration = new Histogram({
  name: "feedcrawl_reconcile_time_seconds",
  help: "Time per reconcile, per controller.",
  labelNames: ["controller"] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [registry],
});

export const workqueueDepth = new Gauge({
  name: "feedcrawl_workqueue_depth",
  help: "Keys waiting in the work queue (ready or delayed), per queue.",
  labelNames: ["name"] as const,
  registers: [registry],
});

export const workqueueAdds = new Counter({
  name: "feedcrawl_workqueue_adds_total",
  help: "Keys added to the work queue, per queue.",
  labelNames: ["name"] as const,
  registers: [registry],
});

export const workqueueRetries = new Counter({
  name: "feedcrawl_workqueue_retries_total",
  help: "Keys re-added after an error (rate limited), per queue.",
  labelNames: ["name"] as const,
  registers: [registry],
});

export const informerRelists = new Counter({
  name: "feedcrawl_informer_relists_total",
  help: "Full lists per informer and cause (start, expired, resync, stall, error).",
  labelNames: ["resource", "cause"] as const,
  registers: [registry],
});

export const leaderStatus = new Gauge({
  name: "feedcrawl_leader_election_master_status",
  help: "1 when this process holds the leader Lease (or runs without leader election), else 0.",
  labelNames: ["name"] as const,
  registers: [registry],
});

/** Incremented by operator/delivery: one per webhook POST outcome. */
export const webhookDeliveries = new Counter({
  name: "feedcrawl_webhook_deliveries_total",
  help: "Webhook delivery attempts per outcome (delivered, retry, failed, conflict).",
  labelNames: ["outcome"] as const,
  registers: [registry],
});

/** Observed by operator/delivery: from the feed's closedAt to the backend's 2xx. */
export const deliveryLatencySeconds = new Histogram({
  name: "feedcrawl_delivery_latency_seconds",
  help: "Seconds from a feed file's close (spec.closedAt) to the webhook's 2xx.",
  buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600],
  registers: [registry],
});
