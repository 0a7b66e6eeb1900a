// The three crawlers, each told the same thing: the start URL, a fixed
// concurrency (global and per domain), robots.txt off, no delays, retries 2,
// items as jsonlines into one file.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { parse, stringify } from "yaml";
import { DEFAULT_RUNNER_RUNTIME_ENV } from "../../operator/crawljob/runner-pod.ts";
import { BENCH_DIR, DEBIAN_PYTHON, FEEDCRAWL_BIN, NODE, REPO_ROOT } from "../lib/context.ts";

const run = promisify(execFile);

export interface CrawlCommand {
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
}

export interface CommandOptions {
  startUrl: string;
  concurrency: number;
  outFile: string;
  scratch: string;
  /** Extra Node flags for feedcrawl (e.g. --cpu-prof); ignored by the peers. */
  nodeArgs?: string[];
}

export interface CrawlTool {
  name: "feedcrawl" | "feedcrawl-cli" | "feedcrawl-head" | "scrapy" | "crawlee";
  /** The command that crawls `startUrl` at `concurrency`, writing items to `outFile`. */
  command(opts: CommandOptions): Promise<CrawlCommand>;
}

/** The local-crawl manifest every feedcrawl run uses: examples/books-local.yaml with the bench settings. */
export const FEEDCRAWL_EXAMPLE = join(REPO_ROOT, "examples", "books-local.yaml");

export async function feedcrawlManifest(opts: { startUrl: string; concurrency: number; outFile: string }) {
  const doc = parse(await readFile(FEEDCRAWL_EXAMPLE, "utf8")) as Record<string, unknown>;
  // books-local.yaml may be a CrawlJob or a bare spider spec: find the spider either way.
  const spec = (doc.spec ?? doc) as Record<string, unknown>;
  const spider = (spec.spider ?? spec) as Record<string, unknown>;
  const host = new URL(opts.startUrl).hostname;
  spider.startUrls = [opts.startUrl];
  spider.allowedDomains = [host];
  spider.settings = {
    ...(spider.settings as object | undefined),
    concurrentRequests: opts.concurrency,
    concurrentRequestsPerDomain: opts.concurrency,
    downloadDelayMs: 0,
    autoThrottle: { enabled: false },
    robotsTxtObey: false,
    retryTimes: 2,
    allowPrivateNetworks: ["127.0.0.0/8"],
  };
  const feeds = { [`file://${opts.outFile}`]: { format: "jsonlines" } };
  if (spec === doc && spider === doc) return { ...spider, feeds };
  spec.feeds = feeds;
  delete spec.storage;
  delete spec.ingest;
  return doc;
}

/** `node [nodeArgs] BIN crawl MANIFEST` in `cwd` with `runtimeEnv` (no NODE_OPTIONS otherwise), the bench manifest written next to the run. */
async function feedcrawlCommand(
  opts: CommandOptions,
  bin: string,
  cwd: string,
  runtimeEnv: Record<string, string> = {},
): Promise<CrawlCommand> {
  const { startUrl, concurrency, outFile, scratch, nodeArgs = [] } = opts;
  const manifest = join(scratch, `feedcrawl-c${concurrency}.yaml`);
  await writeFile(manifest, stringify(await feedcrawlManifest({ startUrl, concurrency, outFile })));
  return {
    command: NODE,
    args: [...nodeArgs, bin, "crawl", manifest],
    cwd,
    env: { ...process.env, NO_COLOR: "1", NODE_OPTIONS: "", ...runtimeEnv },
  };
}

/**
 * feedcrawl as a runner pod runs it: the compiled CLI (dist/, what the image
 * runs; bench/run.ts builds it before measuring) with the env the operator
 * gives a runner pod of the default resources: NODE_OPTIONS (a 4 MiB young
 * generation, the old one sized from the memory limit) and MALLOC_ARENA_MAX.
 */
export const feedcrawl: CrawlTool = {
  name: "feedcrawl",
  command: (opts) => feedcrawlCommand(opts, FEEDCRAWL_BIN, REPO_ROOT, DEFAULT_RUNNER_RUNTIME_ENV),
};

/** The same CLI as `feedcrawl crawl` runs on a laptop: no NODE_OPTIONS (Node's default heap sizing), glibc's default arenas. */
export const feedcrawlCli: CrawlTool = {
  name: "feedcrawl-cli",
  command: (opts) => feedcrawlCommand(opts, FEEDCRAWL_BIN, REPO_ROOT),
};

/**
 * The committed feedcrawl (git HEAD) in a copy next to the site, with the
 * checkout's node_modules: the same run's "before", so a change is compared
 * under the same machine load rather than against another day's numbers.
 */
export const feedcrawlHead: CrawlTool = {
  name: "feedcrawl-head",
  async command(opts) {
    const dir = join(opts.scratch, "..", "..", "feedcrawl-head");
    if (!existsSync(join(dir, "bin", "feedcrawl.ts"))) {
      await mkdir(dir, { recursive: true });
      await run("sh", ["-c", `git -C "${REPO_ROOT}" archive HEAD | tar -x -C "${dir}"`]);
      await symlink(join(REPO_ROOT, "node_modules"), join(dir, "node_modules"));
    }
    // HEAD's TypeScript sources with Node's default heap: the runner as it ran before dist/ and the pod's heap flags.
    return feedcrawlCommand(opts, "bin/feedcrawl.ts", dir);
  },
};

export const scrapy: CrawlTool = {
  name: "scrapy",
  async command({ startUrl, concurrency, outFile }) {
    const settings: Record<string, string> = {
      CONCURRENT_REQUESTS: String(concurrency),
      CONCURRENT_REQUESTS_PER_DOMAIN: String(concurrency),
      DOWNLOAD_DELAY: "0",
      AUTOTHROTTLE_ENABLED: "False",
      ROBOTSTXT_OBEY: "False",
      RETRY_TIMES: "2",
      LOG_LEVEL: "INFO",
      FEEDS: JSON.stringify({ [`file://${outFile}`]: { format: "jsonlines" } }),
    };
    return {
      command: DEBIAN_PYTHON,
      args: [
        "-m",
        "scrapy",
        "runspider",
        "books_spider.py",
        "-a",
        `start_url=${startUrl}`,
        ...Object.entries(settings).flatMap(([k, v]) => ["-s", `${k}=${v}`]),
      ],
      cwd: join(BENCH_DIR, "peers", "scrapy"),
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
    };
  },
};

export const crawlee: CrawlTool = {
  name: "crawlee",
  async command({ startUrl, concurrency, outFile, scratch }) {
    return {
      command: NODE,
      args: ["crawl.mjs", startUrl, String(concurrency), outFile],
      cwd: join(BENCH_DIR, "peers", "crawlee"),
      // Crawlee's storage folder (unused with persistStorage: false, but created) stays out of the repo.
      env: { ...process.env, CRAWLEE_STORAGE_DIR: join(scratch, "crawlee-storage") },
    };
  },
};

export const CRAWL_TOOLS: readonly CrawlTool[] = [feedcrawl, feedcrawlCli, feedcrawlHead, scrapy, crawlee];
export const isFeedcrawl = (name: string) => name.startsWith("feedcrawl");
