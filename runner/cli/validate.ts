// `feedcrawl validate FILE.yaml`: prints OK, or every problem as `path: message`.
// Exit codes: 0 valid, 2 invalid (or unreadable).
import { parseArgs } from "node:util";
import { parseOrUsage } from "../../lib/cli-args.ts";
import { validateCrawlJobSpec } from "../../spec/validate.ts";
import { loadManifestArg } from "./manifest-arg.ts";

const usage = "usage: feedcrawl validate FILE.yaml\n";

export async function main(argv: string[]): Promise<number> {
  const parsed = parseOrUsage(
    "feedcrawl validate",
    usage,
    () => parseArgs({ args: argv, allowPositionals: true, options: { help: { type: "boolean", short: "h" } } }),
    (p) => p.values.help,
  );
  if (typeof parsed === "number") return parsed;
  const loaded = await loadManifestArg(parsed.positionals, usage);
  if (typeof loaded === "number") return loaded;
  const { file, manifest } = loaded;
  const errors = await validateCrawlJobSpec(manifest.spec);
  if (errors.length === 0) {
    process.stdout.write("OK\n");
    return 0;
  }
  for (const e of errors) process.stdout.write(`${e.path}: ${e.message}\n`);
  process.stderr.write(`${file}: ${errors.length} error${errors.length === 1 ? "" : "s"}\n`);
  return 2;
}
