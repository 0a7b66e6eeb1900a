// A real HTTP forward proxy on 127.0.0.1 for the proxy tests: absolute-form
// requests (`GET http://host:port/path`, what clients send for http:// URLs)
// are forwarded with a `via` header, CONNECT tunnels (https:// URLs) are
// spliced to the target; it can demand Basic credentials, and it maps target
// host names to addresses itself (the test names resolve nowhere else). It
// records everything it forwarded.
import http from "node:http";
import net, { type AddressInfo, type Socket } from "node:net";

export interface ForwardProxy {
  url: string;
  port: number;
  /** `GET host:port/path` for absolute-form requests, `CONNECT host:port` for tunnels, in order. */
  forwarded: string[];
  /** Requests refused with 407. */
  refused: number;
  close(): Promise<void>;
}

export const VIA = "1.1 feedcrawl-test-proxy";

export async function startForwardProxy(
  opts: { credentials?: string; address?: (host: string) => string } = {},
): Promise<ForwardProxy> {
  const forwarded: string[] = [];
  const sockets = new Set<Socket>();
  let refused = 0;
  const address = opts.address ?? ((h: string) => h);
  const expected = opts.credentials ? `Basic ${Buffer.from(opts.credentials).toString("base64")}` : undefined;
  const authorized = (req: http.IncomingMessage) => {
    if (!expected || req.headers["proxy-authorization"] === expected) return true;
    refused++;
    return false;
  };

  const server = http.createServer((req, res) => {
    if (!authorized(req)) {
      res.writeHead(407, { "proxy-authenticate": 'Basic realm="test"' }).end();
      return;
    }
    let target: URL;
    try {
      target = new URL(req.url ?? "");
    } catch {
      res.writeHead(400).end("absolute-form only");
      return;
    }
    forwarded.push(`GET ${target.host}${target.pathname}`);
    const headers: http.OutgoingHttpHeaders = { ...req.headers, via: VIA };
    delete headers["proxy-authorization"];
    delete headers["proxy-connection"];
    const up = http.request(
      {
        host: address(target.hostname),
        port: target.port || 80,
        path: target.pathname + target.search,
        method: req.method,
        headers,
      },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on("error", () => res.headersSent || res.writeHead(502).end());
    req.pipe(up);
  });
  server.on("connect", (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on("error", () => {});
    if (!authorized(req)) {
      socket.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\n\r\n');
      return;
    }
    const [host = "", port = "443"] = (req.url ?? "").split(/:(?=\d+$)/);
    forwarded.push(`CONNECT ${req.url}`);
    const up = net.connect(Number(port), address(host.replace(/^\[|\]$/g, "")), () => {
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on("error", () => socket.end("HTTP/1.1 502 Bad Gateway\r\n\r\n"));
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    forwarded,
    get refused() {
      return refused;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
