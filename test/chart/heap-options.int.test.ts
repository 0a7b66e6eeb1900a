// The operator container's NODE_OPTIONS (issue 13): a 1 MB young generation,
// and an old space of 75% of the memory limit in every quantity form; none
// without a limit; MALLOC_ARENA_MAX=2; an extraEnv entry of either name
// replaces the chart's.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { only, render } from "./helm.ts";

interface EnvVar {
  name: string;
  value?: string;
}

async function operatorEnv(values: Record<string, unknown>): Promise<EnvVar[]> {
  const deployment = only(await render(values), "Deployment") as unknown as {
    spec: { template: { spec: { containers: { name: string; env: EnvVar[] }[] } } };
  };
  const c = deployment.spec.template.spec.containers.find((x) => x.name === "operator");
  assert.ok(c, "the Deployment has an `operator` container");
  return c.env;
}

const nodeOptions = (env: EnvVar[]) => env.filter((e) => e.name === "NODE_OPTIONS").map((e) => e.value);

describe("chart: the operator's NODE_OPTIONS and MALLOC_ARENA_MAX", () => {
  for (const [limit, oldSpace] of [
    [undefined, 384], // the default 512Mi
    ["1Gi", 768],
    ["600M", 429],
    [268435456, 192],
    ["0.5Gi", 384],
  ] as const) {
    it(`sizes the old space from a memory limit of ${limit ?? "512Mi (default)"}`, async () => {
      const env = await operatorEnv(limit === undefined ? {} : { "resources.limits.memory": limit });
      assert.deepEqual(nodeOptions(env), [`--max-semi-space-size=1 --max-old-space-size=${oldSpace}`]);
    });
  }

  it("sets only the young generation without a memory limit", async () => {
    const env = await operatorEnv({ "resources.limits": null });
    assert.deepEqual(nodeOptions(env), ["--max-semi-space-size=1"]);
  });

  it("limits glibc to 2 malloc arenas, unless extraEnv sets MALLOC_ARENA_MAX", async () => {
    const arenas = (env: EnvVar[]) => env.filter((e) => e.name === "MALLOC_ARENA_MAX").map((e) => e.value);
    assert.deepEqual(arenas(await operatorEnv({})), ["2"]);
    assert.deepEqual(arenas(await operatorEnv({ extraEnv: [{ name: "MALLOC_ARENA_MAX", value: "4" }] })), ["4"]);
  });

  it("leaves NODE_OPTIONS to extraEnv when it sets one", async () => {
    const env = await operatorEnv({ extraEnv: [{ name: "NODE_OPTIONS", value: "--max-old-space-size=100" }] });
    assert.deepEqual(nodeOptions(env), ["--max-old-space-size=100"]);
  });
});
