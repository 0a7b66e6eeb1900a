// The chart's Grafana dashboard and alerts query only metrics the operator
// exports: every panel's (and template variable's) PromQL is parsed for metric
// names, which must be in the operator's prom-client registry or among the
// per-CrawlJob metrics /metrics appends.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CRAWLJOB_METRICS } from "../../operator/crawljob-metrics.ts";
import { registry } from "../../operator/metrics.ts";
import { chartDir } from "./helm.ts";

interface Panel {
  title: string;
  type: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

/** Names a scrape of the operator shows (a histogram's series carry _bucket, _sum and _count). */
async function exportedNames(): Promise<Set<string>> {
  const names = new Set<string>(Object.keys(CRAWLJOB_METRICS));
  for (const m of await registry.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(m.name + s);
  }
  return names;
}

/** The feedcrawl metric names a PromQL expression reads. */
export function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\bfeedcrawl_[a-zA-Z0-9_:]*/g) ?? [])];
}

const dashboards = readdirSync(join(chartDir, "files", "dashboards")).filter((f) => f.endsWith(".json"));

describe("chart: Grafana dashboard", () => {
  it("ships at least one dashboard", () => assert.ok(dashboards.length > 0));

  for (const file of dashboards) {
    it(`${file}: every panel query names a metric the operator exports`, async () => {
      const exported = await exportedNames();
      const dashboard = JSON.parse(readFileSync(join(chartDir, "files", "dashboards", file), "utf8"));
      const panels: Panel[] = (dashboard.panels as Panel[]).flatMap((p) => [p, ...(p.panels ?? [])]);
      const queries: [string, string][] = [];
      for (const panel of panels.filter((p) => p.type !== "row")) {
        assert.ok(panel.targets?.length, `panel "${panel.title}" has a query`);
        for (const t of panel.targets!) queries.push([`panel "${panel.title}"`, t.expr]);
      }
      for (const v of dashboard.templating.list as { name: string; type: string; query: { query: string } }[]) {
        if (v.type === "query") queries.push([`variable $${v.name}`, v.query.query]);
      }
      for (const [where, expr] of queries) {
        const names = metricNames(expr);
        assert.ok(names.length > 0, `${where} reads no feedcrawl metric: ${expr}`);
        for (const name of names)
          assert.ok(exported.has(name), `${where} reads ${name}, which the operator does not export`);
      }
    });
  }

  it("the check catches a metric the operator does not export", async () => {
    const exported = await exportedNames();
    assert.deepEqual(
      metricNames("rate(feedcrawl_crawljob_pages_total[5m]) / feedcrawl_crawljob_pagez").filter(
        (n) => !exported.has(n),
      ),
      ["feedcrawl_crawljob_pagez"],
    );
  });

  it("the PrometheusRule's alerts read exported metrics too", async () => {
    const exported = await exportedNames();
    const template = readFileSync(join(chartDir, "templates", "prometheusrule.yaml"), "utf8");
    const exprs = [...template.matchAll(/expr: (\|\n(?:\s{12}.*\n)+|.*)/g)].map((m) => m[1]!);
    assert.equal(exprs.length, 3);
    for (const expr of exprs) {
      for (const name of metricNames(expr)) assert.ok(exported.has(name), `${name} in an alert is not exported`);
    }
  });
});
