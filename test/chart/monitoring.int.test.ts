// The chart's opt-in monitoring objects: the Grafana dashboard ConfigMap and
// the PrometheusRule, rendered by helm; the rules checked with `promtool check
// rules` and unit-tested alert by alert with `promtool test rules` (promtool
// built from the Prometheus module like the platform's other binaries).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { stringify } from "yaml";
import { binaryPath } from "../platform/binaries.ts";
import { find, render } from "./helm.ts";

function promtool(args: string[], cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(binaryPath("promtool"), args, { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number(err.code ?? 1) : 0, output: stdout + stderr });
    });
  });
}

const ENABLED = { "metrics.dashboard.enabled": true, "metrics.prometheusRule.enabled": true };
const job = { namespace: "shop", crawljob: "books" };

/** One alert as promtool expects it at `eval_time`. */
const alert = (labels: Record<string, string>, annotations: Record<string, string>) => ({
  exp_labels: { severity: "warning", ...labels },
  exp_annotations: annotations,
});

/** `promtool test rules` cases: each alert fires when it should, and not before or otherwise. */
const TESTS = {
  rule_files: ["rules.yaml"],
  evaluation_interval: "1m",
  tests: [
    {
      interval: "1m",
      input_series: [
        { series: 'feedcrawl_crawljob_failed{namespace="shop",crawljob="books"}', values: "0 0 1 1 1" },
        { series: 'feedcrawl_crawljob_failed{namespace="shop",crawljob="shoes"}', values: "0x4" },
        // 60 s older every minute: 1800 s (the default threshold) is crossed after 30 minutes.
        {
          series: 'feedcrawl_crawljob_oldest_undelivered_feed_age_seconds{namespace="shop",crawljob="books"}',
          values: "0+60x40",
        },
        {
          series: 'feedcrawl_crawljob_oldest_undelivered_feed_age_seconds{namespace="shop",crawljob="shoes"}',
          values: "0x40",
        },
      ],
      alert_rule_test: [
        { eval_time: "1m", alertname: "FeedcrawlCrawlJobFailed", exp_alerts: [] },
        {
          eval_time: "3m",
          alertname: "FeedcrawlCrawlJobFailed",
          exp_alerts: [
            alert(job, {
              summary: "CrawlJob shop/books failed",
              description: "kubectl describe crawljob -n shop books says why (the Succeeded condition's reason).",
            }),
          ],
        },
        { eval_time: "29m", alertname: "FeedcrawlFeedUndelivered", exp_alerts: [] },
        {
          eval_time: "31m",
          alertname: "FeedcrawlFeedUndelivered",
          exp_alerts: [
            alert(job, {
              summary: "A feed file of CrawlJob shop/books is stuck undelivered",
              description:
                "Its oldest undelivered feed file was stored 31m 0s ago. kubectl get cfeed -n shop -l feedcrawl.io/crawljob=books shows the delivery state.",
            }),
          ],
        },
      ],
    },
    {
      // Retries and no delivery: pending for deliveryFailingFor (10m), then firing.
      interval: "1m",
      input_series: [
        { series: 'feedcrawl_webhook_deliveries_total{outcome="retry"}', values: "0+12x30" },
        { series: 'feedcrawl_webhook_deliveries_total{outcome="delivered"}', values: "5x30" },
      ],
      alert_rule_test: [
        { eval_time: "10m", alertname: "FeedcrawlDeliveryFailing", exp_alerts: [] },
        {
          eval_time: "20m",
          alertname: "FeedcrawlDeliveryFailing",
          exp_alerts: [
            alert(
              {},
              {
                summary: "Webhook deliveries are failing",
                description:
                  "Every webhook delivery attempt of the last 5 minutes failed or is being retried (200m/s). Check the ingest backend and the CrawlFeeds' status.delivery.lastError.",
              },
            ),
          ],
        },
      ],
    },
    {
      // Retries while other deliveries succeed: the backend works, no alert.
      interval: "1m",
      input_series: [
        { series: 'feedcrawl_webhook_deliveries_total{outcome="retry"}', values: "0+12x30" },
        { series: 'feedcrawl_webhook_deliveries_total{outcome="delivered"}', values: "0+30x30" },
      ],
      alert_rule_test: [{ eval_time: "20m", alertname: "FeedcrawlDeliveryFailing", exp_alerts: [] }],
    },
  ],
};

describe("chart: dashboard and PrometheusRule (opt-in)", () => {
  it("renders neither by default", async () => {
    const objects = await render();
    assert.equal(find(objects, "PrometheusRule").length, 0);
    assert.ok(!find(objects, "ConfigMap").some((c) => c.metadata.labels?.grafana_dashboard));
  });

  it("renders the dashboard ConfigMap with the grafana_dashboard label", async () => {
    const [cm, ...more] = find(await render(ENABLED), "ConfigMap").filter((c) => c.metadata.labels?.grafana_dashboard);
    assert.equal(more.length, 0);
    assert.equal(cm!.metadata.labels!.grafana_dashboard, "1");
    const dashboard = JSON.parse((cm as unknown as { data: Record<string, string> }).data["feedcrawl.json"]!);
    assert.equal(dashboard.uid, "feedcrawl-overview");
    assert.ok(dashboard.panels.length > 5);
  });

  it("the PrometheusRule passes promtool check rules and its unit tests", async () => {
    const [rule] = find(await render(ENABLED), "PrometheusRule");
    const dir = mkdtempSync(join(process.env.FEEDCRAWL_TEST_WORKDIR || tmpdir(), "promtool-"));
    writeFileSync(join(dir, "rules.yaml"), stringify((rule as unknown as { spec: unknown }).spec));
    writeFileSync(join(dir, "tests.yaml"), stringify(TESTS));
    const check = await promtool(["check", "rules", "rules.yaml"], dir);
    assert.equal(check.code, 0, check.output);
    assert.match(check.output, /SUCCESS: 3 rules found/);
    const test = await promtool(["test", "rules", "tests.yaml"], dir);
    assert.equal(test.code, 0, test.output);
    assert.match(test.output, /SUCCESS/);
  });
});
