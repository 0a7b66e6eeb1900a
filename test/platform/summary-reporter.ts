// A node:test reporter that prints one closing line, `N passed, N failed`
// (`, N skipped` when some were skipped or todo), counting leaf tests only:
// suites and tests that have subtests are containers, not tests.
//
// node:test reports each file's tests in post-order (children before their
// parent), so a result is a container exactly when the result just before it
// in the same file is one level deeper.
import type { TestEvent } from "node:test/reporters";

export interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

export function summaryLine(counts: Counts): string {
  const line = `${counts.passed} passed, ${counts.failed} failed`;
  return counts.skipped > 0 ? `${line}, ${counts.skipped} skipped` : line;
}

export async function countLeaves(source: AsyncIterable<TestEvent>): Promise<Counts> {
  const counts: Counts = { passed: 0, failed: 0, skipped: 0 };
  const lastNesting = new Map<string, number>();
  for await (const event of source) {
    if (event.type !== "test:pass" && event.type !== "test:fail") continue;
    const data = event.data;
    const file = data.file ?? "";
    const previous = lastNesting.get(file);
    lastNesting.set(file, data.nesting);
    if (data.details.type === "suite") continue;
    if (previous === data.nesting + 1) continue; // a test with subtests
    if (data.skip || data.todo) counts.skipped++;
    else if (event.type === "test:pass") counts.passed++;
    else counts.failed++;
  }
  return counts;
}

export default async function* summaryReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  yield `${summaryLine(await countLeaves(source))}\n`;
}
