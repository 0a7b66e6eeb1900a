// toxiproxy-server: tests create proxies through its admin API to inject
// latency, resets and timeouts between parts. Its admin API listens on
// loopback, or on `host` (the node's bridge address with a node); each proxy
// listens where the test says (with a node: `${node().host}:<port>`, so pods reach it).
import { join } from "node:path";
import { binaryPath } from "./binaries.ts";
import { freePort, retryOnPortClash } from "./ports.ts";
import { httpOk } from "./probe.ts";
import { ManagedProcess } from "./process.ts";

export interface Toxiproxy {
  url: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export interface ToxiproxyOptions {
  workDir: string;
  /** Address of the admin API; default 127.0.0.1. */
  host?: string;
}

export function startToxiproxy(options: ToxiproxyOptions): Promise<Toxiproxy> {
  return retryOnPortClash(() => startToxiproxyOnce(options));
}

async function startToxiproxyOnce(options: ToxiproxyOptions): Promise<Toxiproxy> {
  const host = options.host ?? "127.0.0.1";
  const port = await freePort(host);
  const proc = new ManagedProcess({
    name: "toxiproxy",
    command: binaryPath("toxiproxy-server"),
    args: ["-host", host, "-port", String(port)],
    logFile: join(options.workDir, "logs", "toxiproxy.log"),
  });
  const url = `http://${host}:${port}`;
  await proc.startAndWait(() => httpOk(`${url}/version`), 30_000, "answering");
  return { url, process: proc, stop: () => proc.stop() };
}
