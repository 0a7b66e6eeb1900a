// The bench's side of a backend child process: it is forked with an IPC
// channel, says where it listens, and answers "stats" with what it received
// (HTTP requests, TCP connections) and the CPU it used since "reset".
import type { Server } from "node:http";

export interface BackendStats {
  requests: number;
  connections: number;
  cpuSeconds: number;
  rssMb: number;
  /** Webhook requests (those with a webhook-id header): when each answer was sent, for latency figures. */
  webhooks: { id: string; status: number; at: number }[];
}

type Message = { type: "reset" } | { type: "stats" } | { type: "stop" };

export function serveBenchIpc(server: Server, url: string, stop: () => Promise<void>): void {
  let requests = 0;
  let connections = 0;
  let cpuBase = process.cpuUsage();
  server.on("connection", () => {
    connections++;
  });
  let webhooks: BackendStats["webhooks"] = [];
  server.on("request", (req, res) => {
    requests++;
    const id = req.headers["webhook-id"];
    if (typeof id === "string") res.once("finish", () => webhooks.push({ id, status: res.statusCode, at: Date.now() }));
  });
  process.on("message", (msg: Message) => {
    if (msg.type === "reset") {
      requests = 0;
      connections = 0;
      webhooks = [];
      cpuBase = process.cpuUsage();
      process.send?.({ type: "reset" });
    } else if (msg.type === "stats") {
      const cpu = process.cpuUsage(cpuBase);
      const stats: BackendStats = {
        requests,
        connections,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        rssMb: process.memoryUsage.rss() / 1024 / 1024,
        webhooks,
      };
      process.send?.({ type: "stats", stats });
    } else if (msg.type === "stop") {
      stop().finally(() => process.exit(0));
    }
  });
  // The bench going away (crash, Ctrl-C) takes its backends with it.
  process.on("disconnect", () => {
    stop().finally(() => process.exit(0));
  });
  process.send?.({ type: "ready", url });
}
