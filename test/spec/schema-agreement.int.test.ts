// Issue 16, bug 3: the local validator (`feedcrawl validate`, spec/validate.ts) and
// the CRD schema on the real API server agree. Every malformed CrawlJob of
// test/operator/bad-input.int.test.ts goes through both: every field path the API
// server names in its 422 (causes, or the strict decoder's "unknown field") must be
// named locally too — the same path, or a path under it (a CEL rule on spec.feeds
// is reported locally at the feed's option). The local validator may name more:
// those are the checks CEL cannot express, which the operator reports as
// Validated=False; the test lists them.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { API_VERSION } from "../../crds/schema/common.ts";
import { KubeClient } from "../../kube/client.ts";
import { KubeApiError } from "../../kube/errors.ts";
import { CRAWLJOBS } from "../../kube/resources.ts";
import { validateCrawlJobSpec } from "../../spec/validate.ts";
import { type InvalidCase, loadInvalidCrawlJobs } from "../fixtures/invalid-crawljobs.ts";
import { installCrds } from "../operator/harness.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { createNamespace, type Disposable } from "../platform/fixtures.ts";

const { validSpec, cases } = await loadInvalidCrawlJobs();
const client = new KubeClient(adminKubeConfig());
let ns: Disposable;

before(async () => {
  await installCrds();
  ns = await createNamespace("spec-agree");
});
after(async () => {
  await ns?.cleanup();
  await client.close();
});

/** A local path in the API server's spelling: map keys joined with "." (`spec.feeds.s3://b/x.jsonl.format`). */
function apiSpelling(localPath: string): string {
  return localPath.replace(/\["((?:[^"\\]|\\.)*)"\]/g, (_m, key: string) => `.${JSON.parse(`"${key}"`)}`);
}

/** The field paths the API server's refusal names. */
function serverPaths(err: KubeApiError): string[] {
  const causes = (err.details as { causes?: { field?: string; message?: string }[] } | undefined)?.causes ?? [];
  const paths = new Set<string>();
  // "<nil>" is the API server's "some validation rules were not checked because the object was invalid".
  for (const c of causes) if (c.field && c.field !== "<nil>") paths.add(c.field.replace(/^\./, ""));
  // Strict field validation: `unknown field "spec.colour"` in the message (and sometimes in a cause's message).
  for (const text of [err.message, ...causes.map((c) => c.message ?? "")])
    for (const m of text.matchAll(/unknown field "([^"]+)"/g)) paths.add(m[1] as string);
  return [...paths];
}

const covers = (local: string, server: string) =>
  local === server || local.startsWith(`${server}.`) || local.startsWith(`${server}[`);

async function throughServer(c: InvalidCase, spec: unknown): Promise<string[] | undefined> {
  const name = `agree-${c.name}`.slice(0, 63).replace(/-+$/, "");
  try {
    await client.create(
      CRAWLJOBS,
      { apiVersion: API_VERSION, kind: "CrawlJob", metadata: { name, namespace: ns.name }, spec } as never,
      { fieldValidation: "Strict" },
    );
    return undefined;
  } catch (err) {
    if (!(err instanceof KubeApiError) || (err.code !== 422 && err.code !== 400)) throw err;
    return serverPaths(err);
  }
}

test("every field path the API server names for an invalid CrawlJob is named by the local validator", async () => {
  assert.ok(cases.length >= 30, `cases read from bad-input.int.test.ts: ${cases.length}`);
  const missing: string[] = [];
  const localOnly: string[] = [];
  for (const c of cases) {
    const spec = structuredClone(validSpec()) as Record<string, unknown>;
    c.mutate(spec);
    const local = (await validateCrawlJobSpec(spec)).map((e) => apiSpelling(e.path));
    const server = await throughServer(c, spec);
    if (c.rejected) assert.ok(server, `${c.name}: the API server should refuse it (bad-input says ${c.rejected})`);
    if (server === undefined) {
      // Accepted at admission: what the operator's Validated=False (or its Secret checks) catches.
      if (c.reason === "InvalidSpec")
        assert.ok(
          (await validateCrawlJobSpec(spec)).some((e) => c.field?.test(e.path)),
          `${c.name}: the operator's InvalidSpec should be named locally too (${c.field})`,
        );
      localOnly.push(`${c.name}: ${local.join(", ") || "(nothing locally: needs the cluster — " + c.reason + ")"}`);
      continue;
    }
    assert.ok(server.length > 0, `${c.name}: the API server's refusal names no field`);
    for (const p of server)
      if (!local.some((l) => covers(l, p))) missing.push(`${c.name}: server ${p}; local ${local.join(", ") || "none"}`);
  }
  console.log(`accepted by the API server, caught by the operator:\n  ${localOnly.join("\n  ")}`);
  assert.deepEqual(missing, [], `paths the API server names that feedcrawl validate does not:\n${missing.join("\n")}`);
});
