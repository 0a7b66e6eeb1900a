// The one command-line preamble of every `feedcrawl` command: parse, and on a
// bad argument or --help print the usage and give the exit code.

/**
 * Runs `parse` (node:util's parseArgs, which throws on an unknown or malformed
 * option). Returns what it parsed, or the exit code after printing the usage:
 * 2 with the error on stderr, 0 on stdout when `help(parsed)` is true.
 */
export function parseOrUsage<R>(
  command: string,
  usage: string,
  parse: () => R,
  help: (parsed: R) => boolean | undefined,
): R | number {
  let parsed: R;
  try {
    parsed = parse();
  } catch (err) {
    process.stderr.write(`${command}: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (!help(parsed)) return parsed;
  process.stdout.write(usage);
  return 0;
}
