// A bulk-ingest webhook receiver for tests, on 127.0.0.1: verifies every
// request's Standard Webhooks signature with the `standardwebhooks` library,
// records each delivery (id, verified, body), and answers what the test's
// `respond` function says (default 202).
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";

export interface ReceivedWebhook {
  id: string;
  timestamp: string;
  verified: boolean;
  verifyError?: string;
  body: unknown;
  headers: IncomingHttpHeaders;
  at: number;
}

export interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

/** Decides the answer; may await (to hold the response back) or return "destroy" to drop the connection. */
export type Responder = (req: ReceivedWebhook, index: number) => Answer | "destroy" | Promise<Answer | "destroy">;

export interface Receiver {
  url: string;
  received: ReceivedWebhook[];
  /** Distinct webhook-ids among verified requests. */
  distinctIds(): Set<string>;
  respond: Responder;
  /** Requests being answered right now (max observed in `maxConcurrent`). */
  maxConcurrent: number;
  close(): Promise<void>;
}

export async function startReceiver(secret: string | Uint8Array, respond?: Responder): Promise<Receiver> {
  const verifier = typeof secret === "string" ? new Webhook(secret) : new Webhook(secret, { format: "raw" });
  let active = 0;
  const receiver: Receiver = {
    url: "",
    received: [],
    distinctIds: () => new Set(receiver.received.filter((r) => r.verified).map((r) => r.id)),
    respond: respond ?? (() => ({ status: 202 })),
    maxConcurrent: 0,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer(async (req, res) => {
    active++;
    receiver.maxConcurrent = Math.max(receiver.maxConcurrent, active);
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const raw = Buffer.concat(chunks).toString("utf8");
      const entry: ReceivedWebhook = {
        id: String(req.headers["webhook-id"] ?? ""),
        timestamp: String(req.headers["webhook-timestamp"] ?? ""),
        verified: false,
        body: undefined,
        headers: req.headers,
        at: Date.now(),
      };
      try {
        entry.body = verifier.verify(raw, req.headers as Record<string, string>);
        entry.verified = true;
      } catch (err) {
        entry.verifyError = (err as Error).message;
      }
      receiver.received.push(entry);
      const answer = entry.verified ? await receiver.respond(entry, receiver.received.length - 1) : { status: 401 };
      if (answer === "destroy") {
        req.socket.destroy();
        return;
      }
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(answer.body ?? "");
    } finally {
      active--;
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bulk-ingest`;
  return receiver;
}
