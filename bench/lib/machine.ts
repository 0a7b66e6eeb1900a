// The machine and the versions a result was measured with.
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { BENCH_DIR, DEBIAN_PYTHON, NODE } from "./context.ts";
import { PG_ADMIN_URL } from "./postgres.ts";
import { VERSITYGW } from "./s3.ts";

const run = promisify(execFile);

async function output(command: string, args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run(command, args);
    return (stdout || stderr).trim();
  } catch (err) {
    // Some tools (wrk) print their version and exit non-zero.
    const { stdout, stderr } = err as { stdout?: string; stderr?: string };
    const text = `${stdout ?? ""}${stderr ?? ""}`.trim();
    return text || `unavailable (${(err as Error).message.split("\n")[0]})`;
  }
}

export interface Machine {
  date: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  os: string;
  loadAverage: number[];
  versions: Record<string, string>;
}

export async function describeMachine(): Promise<Machine> {
  const osRelease = await readFile("/etc/os-release", "utf8").catch(() => "");
  const pretty = /PRETTY_NAME="([^"]+)"/.exec(osRelease)?.[1] ?? os.type();
  const crawlee = await readFile(join(BENCH_DIR, "peers", "crawlee", "node_modules", "crawlee", "package.json"), "utf8")
    .then((t) => (JSON.parse(t) as { version: string }).version)
    .catch(() => "not installed");
  const pythonVersions = await output(DEBIAN_PYTHON, [
    "-c",
    "import sys, scrapy, twisted, lxml.etree as e; print(sys.version.split()[0], scrapy.__version__, twisted.__version__, '.'.join(map(str, e.LXML_VERSION[:3])))",
  ]);
  const [python, scrapy, twisted, lxml] = pythonVersions.split(" ");
  return {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    kernel: os.release(),
    os: pretty,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    versions: {
      "feedcrawl (Node)": await output(NODE, ["--version"]),
      Scrapy: scrapy ? `${scrapy} (Python ${python}, Twisted ${twisted}, lxml ${lxml})` : pythonVersions,
      Crawlee: crawlee,
      nginx: (await output("nginx", ["-v"])).replace("nginx version: ", ""),
      wrk: (await output("wrk", ["--version"])).split("\n")[0] ?? "",
      PostgreSQL: await output("psql", [PG_ADMIN_URL, "-tAc", "SHOW server_version"]),
      // Built from source by the test platform: the binary says "git", its folder says the version.
      versitygw: VERSITYGW.split("/").at(-2)?.replace("versitygw-", "") ?? "unknown",
    },
  };
}

export function machineMarkdown(m: Machine, loadAtEnd: number[]): string {
  const lines = [
    "| | |",
    "|---|---|",
    `| date (UTC) | ${m.date} |`,
    `| CPU | ${m.cpu}, ${m.cores} cores available |`,
    `| memory | ${m.memoryGiB} GiB |`,
    `| OS | ${m.os}, Linux ${m.kernel} |`,
    `| load average (1/5/15 min) of the last bench command | at start ${m.loadAverage.join(" / ")}, at end ${loadAtEnd.map((x) => x.toFixed(2)).join(" / ")} |`,
  ];
  for (const [k, v] of Object.entries(m.versions)) lines.push(`| ${k} | ${v} |`);
  return lines.join("\n");
}
