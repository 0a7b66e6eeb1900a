// Stub: filled in by its issue.
export async function main(_argv: string[]): Promise<number> {
  process.stderr.write("feedcrawl: crawl is not implemented yet\n");
  return 1;
}
