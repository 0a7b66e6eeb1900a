#!/usr/bin/env node
// The one CLI: `feedcrawl operator | run | crawl FILE | validate FILE`.
const usage = `usage: feedcrawl <command> [options]

commands:
  crawl FILE.yaml      run a CrawlJob (or bare spider spec) on this machine, no cluster
  validate FILE.yaml   check a manifest and print every error with its field path
  run                  inside a runner pod: crawl the mounted spec and report to the API
  operator             run the controller
`;

const commands: Record<string, () => Promise<{ main(argv: string[]): Promise<number> }>> = {
  crawl: () => import("../runner/cli/crawl.ts"),
  validate: () => import("../runner/cli/validate.ts"),
  run: () => import("../runner/cli/run.ts"),
  operator: () => import("../operator/cli.ts"),
};

const [name, ...rest] = process.argv.slice(2);
const load = name ? commands[name] : undefined;
if (!load) {
  process.stderr.write(
    name && name !== "--help" && name !== "-h" ? `feedcrawl: unknown command '${name}'\n\n${usage}` : usage,
  );
  process.exit(name && name !== "--help" && name !== "-h" ? 2 : 0);
}
const command = await load();
process.exitCode = await command.main(rest);
