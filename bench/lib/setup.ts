// Installs the peers when they are missing: Debian packages (Scrapy, nginx,
// wrk) with apt-get, Crawlee into bench/peers/crawlee with npm on Node 24.
// None of them is a dependency of feedcrawl itself.
import { execFile } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Logger } from "pino";
import { BENCH_DIR, DEBIAN_PYTHON, NODE, REPO_ROOT } from "./context.ts";

const run = promisify(execFile);

async function works(command: string, args: string[]): Promise<boolean> {
  try {
    await run(command, args);
    return true;
  } catch {
    return false;
  }
}

export async function ensurePeers(logger: Logger): Promise<void> {
  const missing: string[] = [];
  if (!(await works(DEBIAN_PYTHON, ["-c", "import scrapy"]))) missing.push("python3-scrapy");
  if (!(await works("nginx", ["-v"]))) missing.push("nginx");
  if (!(await works("wrk", ["--version"])) && !existsSync("/usr/bin/wrk")) missing.push("wrk");
  if (missing.length) {
    logger.info({ packages: missing }, "Installing the Debian packages the bench needs");
    await run("apt-get", ["update"], { maxBuffer: 64 * 1024 * 1024 });
    await run("apt-get", ["install", "-y", ...missing], {
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      maxBuffer: 64 * 1024 * 1024,
    });
  }
  const crawleeDir = join(BENCH_DIR, "peers", "crawlee");
  if (!existsSync(join(crawleeDir, "node_modules", "crawlee", "package.json"))) {
    logger.info({ dir: crawleeDir }, "Installing Crawlee for the bench (npm ci --prefix bench/peers/crawlee)");
    const npmCli = realpathSync((await run("which", ["npm"])).stdout.trim());
    // npm's own code on Node 24 too, and lifecycle scripts find Node 24 first on PATH.
    await run(NODE, [npmCli, "ci", "--prefix", crawleeDir, "--no-audit", "--no-fund"], {
      cwd: REPO_ROOT,
      env: { ...process.env, PATH: `${join(REPO_ROOT, "node_modules", ".bin")}:${process.env.PATH}` },
      maxBuffer: 64 * 1024 * 1024,
    });
  }
}
