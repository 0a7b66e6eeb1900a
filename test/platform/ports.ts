// Free TCP ports on 127.0.0.1 (or another local address, e.g. the node's
// bridge address): the OS picks one for a throwaway listener, which is closed
// again before the server that needs the port binds it.
import { createServer } from "node:net";

export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      if (!address || typeof address === "string") {
        server.close();
        reject(new Error("Could not read the port of a throwaway listener"));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/** `n` distinct free ports (all held at once, so none repeats). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => {
      const server = createServer();
      server.unref();
      return new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve(server));
      });
    }),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (!address || typeof address === "string") throw new Error("Could not read the port of a throwaway listener");
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/**
 * Runs `start` again (up to `attempts` times) when it failed because its port
 * was taken between freePort() choosing it and the server binding it, which
 * can happen when several platforms start at once on one machine.
 */
export async function retryOnPortClash<T>(start: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= attempts || !/address already in use/i.test((err as Error).message)) throw err;
    }
  }
}
