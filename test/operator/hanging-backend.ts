// A loopback webhook backend that accepts every request and never answers:
// what a hung ingest service looks like to the operator.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface HangingBackend {
  url: string;
  /** performance.now() of each request's arrival. */
  requests: number[];
  /** performance.now() of each request's connection closing (by the client). */
  closed: number[];
  close(): Promise<void>;
}

export async function startHangingBackend(): Promise<HangingBackend> {
  const requests: number[] = [];
  const closed: number[] = [];
  const server = createServer((req) => {
    requests.push(performance.now());
    req.socket.once("close", () => closed.push(performance.now()));
    req.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/ingest`,
    requests,
    closed,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
