// Reads a V8 .cpuprofile (node --cpu-prof) and tells where the time went:
// self time per function and per package, for the "why is it slower" note.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  byFunction: { name: string; where: string; selfMs: number; share: number }[];
  byArea: { area: string; selfMs: number; share: number }[];
}

/** node_modules/<pkg>, the project folder (runner/…), node: internals, or V8's own buckets. */
function areaOf(url: string, name: string): string {
  if (!url) return name.startsWith("(") ? name : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  // Node's own code, by subsystem: module loading (and TS type stripping, deps/amaro) apart from streams, http, …
  if (url.startsWith("node:")) {
    const rest = url
      .slice(5)
      .replace(/^internal\//, "")
      .split("/");
    const area = rest[0] === "deps" ? `deps/${rest[1] ?? ""}` : (rest[0] ?? "");
    return `node:${area}`;
  }
  if (url.startsWith("wasm://")) return "wasm (undici's llhttp parser)";
  const project = /\/(runner|operator|bin|crds)\/(.+)$/.exec(url);
  if (project) return `${project[1]}/${project[2]!.split("/")[0]}`;
  return url;
}

export async function summarizeProfileDir(dir: string, top = 12): Promise<ProfileSummary | undefined> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".cpuprofile"));
  if (files.length === 0) return undefined;
  // The main thread's profile is the largest file.
  let best: { file: string; profile: Profile } | undefined;
  for (const f of files) {
    const profile = JSON.parse(await readFile(join(dir, f), "utf8")) as Profile;
    if (!best || profile.samples.length > best.profile.samples.length) best = { file: join(dir, f), profile };
  }
  const { profile, file } = best!;
  const totalMs = (profile.endTime - profile.startTime) / 1000;
  const msPerSample = totalMs / Math.max(1, profile.samples.length);
  const fn = new Map<string, { name: string; where: string; hits: number }>();
  const area = new Map<string, number>();
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (!hits) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName || "(anonymous)";
    const where = url
      ? `${url.replace(/^file:\/\/.*?\/(node_modules|runner|operator|bin)\//, "$1/")}:${lineNumber + 1}`
      : "";
    const key = `${name}@${where}`;
    const entry = fn.get(key) ?? { name, where, hits: 0 };
    entry.hits += hits;
    fn.set(key, entry);
    const a = areaOf(url, name);
    area.set(a, (area.get(a) ?? 0) + hits);
  }
  const samples = profile.samples.length || 1;
  return {
    file,
    totalMs,
    byFunction: [...fn.values()]
      .sort((a, b) => b.hits - a.hits)
      .slice(0, top)
      .map((e) => ({ name: e.name, where: e.where, selfMs: e.hits * msPerSample, share: e.hits / samples })),
    byArea: [...area.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([a, hits]) => ({ area: a, selfMs: hits * msPerSample, share: hits / samples })),
  };
}
