// What every bench section shares: where to put files, the logger, the
// project's Node 24, and whether this is a --quick run.
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { pino } from "pino";

export const REPO_ROOT = resolve(import.meta.dirname, "..", "..");
export const BENCH_DIR = join(REPO_ROOT, "bench");
/** Node 24 from the `node` devDependency: the system node is older. */
export const NODE = join(REPO_ROOT, "node_modules", ".bin", "node");
/**
 * The CLI as it ships: the JavaScript `npm run build` writes to dist/ (what
 * the image runs). Measuring the TypeScript sources would count Node's type
 * stripping, ~30 MB per process that no deployment pays.
 */
export const FEEDCRAWL_BIN = join(REPO_ROOT, "dist", "bin", "feedcrawl.js");
/** Debian's python3 (python3-scrapy lives there, not in a pyenv). */
export const DEBIAN_PYTHON = "/usr/bin/python3";

export interface BenchContext {
  quick: boolean;
  /** Profile one feedcrawl crawl even when it is not slower than a peer. */
  profile: boolean;
  /** Runs per tool and setting (interleaved). */
  runs: number;
  /** Scratch space: the static site, feeds, S3 data, nginx. Removed at the end. */
  workDir: string;
  /** Raw logs of every run (bench/results/raw/<stamp>/, git-ignored). */
  rawDir: string;
  logger: pino.Logger;
}

export async function ensureDir(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  return dir;
}
