// toxiproxy-server: tests create proxies through its admin API to inject
// latency, resets and timeouts between parts.
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

export function startToxiproxy(options: { workDir: string }): Promise<Toxiproxy> {
  return retryOnPortClash(() => startToxiproxyOnce(options));
}

async function startToxiproxyOnce(options: { workDir: string }): Promise<Toxiproxy> {
  const port = await freePort();
  const proc = new ManagedProcess({
    name: "toxiproxy",
    command: binaryPath("toxiproxy-server"),
    args: ["-host", "127.0.0.1", "-port", String(port)],
    logFile: join(options.workDir, "logs", "toxiproxy.log"),
  });
  const url = `http://127.0.0.1:${port}`;
  await proc.startAndWait(() => httpOk(`${url}/version`), 30_000, "answering");
  return { url, process: proc, stop: () => proc.stop() };
}
