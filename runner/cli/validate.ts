// `feedcrawl validate FILE.yaml`: prints OK, or every problem as `path: message`.
// Exit codes: 0 valid, 2 invalid (or unreadable).
import { parseArgs } from "node:util";
import { loadManifest, validateCrawlJobSpec } from "../validate.ts";

const usage = "usage: feedcrawl validate FILE.yaml\n";

export async function main(argv: string[]): Promise<number> {
  let positionals: string[];
  try {
    ({ positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { help: { type: "boolean", short: "h" } },
    }));
  } catch (err) {
    process.stderr.write(`feedcrawl validate: ${(err as Error).message}\n${usage}`);
    return 2;
  }
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(usage);
    return 0;
  }
  const file = positionals[0];
  if (!file || positionals.length > 1) {
    process.stderr.write(usage);
    return 2;
  }
  let manifest: Awaited<ReturnType<typeof loadManifest>>;
  try {
    manifest = await loadManifest(file);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const errors = validateCrawlJobSpec(manifest.spec);
  if (errors.length === 0) {
    process.stdout.write("OK\n");
    return 0;
  }
  for (const e of errors) process.stdout.write(`${e.path}: ${e.message}\n`);
  process.stderr.write(`${file}: ${errors.length} error${errors.length === 1 ? "" : "s"}\n`);
  return 2;
}
