// Readiness probes: one HTTP(S) GET that answers true on a 2xx status.
import { readFileSync } from "node:fs";
import { Agent, request } from "undici";

const agents = new Map<string, Agent>();

function agentFor(caFile: string): Agent {
  let agent = agents.get(caFile);
  if (!agent) {
    agent = new Agent({ connect: { ca: readFileSync(caFile) }, pipelining: 0 });
    agents.set(caFile, agent);
  }
  return agent;
}

export async function httpOk(url: string, options: { caFile?: string; token?: string } = {}): Promise<boolean> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const response = await request(url, {
    headers,
    headersTimeout: 5000,
    bodyTimeout: 5000,
    ...(options.caFile ? { dispatcher: agentFor(options.caFile) } : {}),
  });
  await response.body.dump();
  return response.statusCode >= 200 && response.statusCode < 300;
}

/** Closes the probe agents so they hold no sockets open at exit. */
export async function closeProbes(): Promise<void> {
  await Promise.all([...agents.values()].map((a) => a.close()));
  agents.clear();
}
