// A bulk-ingest webhook receiver on 127.0.0.1 for the tests: verifies every
// request's Standard Webhooks signature with the `standardwebhooks` library
// and counts distinct webhook-ids.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";

export interface ReceivedWebhook {
  id: string;
  body: Record<string, unknown>;
}

export interface Receiver {
  url: string;
  secret: string;
  received: ReceivedWebhook[];
  badSignatures: number;
  distinctIds(): Set<string>;
  /** Decides the status code per request (default 200). */
  respond: (hook: ReceivedWebhook) => number;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const secret = `whsec_${randomBytes(32).toString("base64")}`;
  const verifier = new Webhook(secret);
  const receiver: Receiver = {
    url: "",
    secret,
    received: [],
    badSignatures: 0,
    distinctIds: () => new Set(receiver.received.map((r) => r.id)),
    respond: () => 200,
    close: async () => {},
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      try {
        const headers = req.headers as IncomingHttpHeaders & Record<string, string>;
        const payload = verifier.verify(body, headers) as Record<string, unknown>;
        const hook = { id: String(req.headers["webhook-id"]), body: payload };
        receiver.received.push(hook);
        res.writeHead(receiver.respond(hook)).end();
      } catch {
        receiver.badSignatures += 1;
        res.writeHead(401).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`;
  receiver.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}
