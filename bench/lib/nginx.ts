// Serves a static folder with Debian's nginx on loopback, so the site is not
// what limits a crawler. The access log (one line per request, no buffering)
// is the neutral count of pages each crawler fetched.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { freePort, waitForPort } from "./ports.ts";

export interface Nginx {
  url: string;
  port: number;
  /** Lines in the access log so far: take a reading before and after a run. */
  requestCount(): Promise<number>;
  /** Request lines ("<msec> <status> <uri>") logged after the given count. */
  requestsSince(count: number): Promise<{ msec: number; status: number; uri: string }[]>;
  stop(): Promise<void>;
}

export async function startNginx(opts: { root: string; workDir: string; workers?: number }): Promise<Nginx> {
  const prefix = join(opts.workDir, "nginx");
  await mkdir(join(prefix, "tmp"), { recursive: true });
  const port = await freePort();
  const accessLog = join(prefix, "access.log");
  await writeFile(accessLog, "");
  // Started as root, nginx's workers would run as nobody and could not read a private temp folder.
  const user = process.getuid?.() === 0 ? "user root;" : "";
  const conf = `
${user}
worker_processes ${opts.workers ?? 1};
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  log_format bench '$msec $status $request_uri';
  access_log ${accessLog} bench;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 75s;
  keepalive_requests 100000;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${opts.root};
    index index.html;
  }
}
`;
  const confFile = join(prefix, "nginx.conf");
  await writeFile(confFile, conf);
  const child: ChildProcess = spawn("nginx", ["-p", prefix, "-c", confFile], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr += d;
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await Promise.race([
    waitForPort(port, "nginx"),
    exited.then(() => {
      throw new Error(`nginx exited at start: ${stderr.trim()} (install it with: apt-get install -y nginx)`);
    }),
  ]);

  const readLines = async () => (await readFile(accessLog, "utf8")).split("\n").filter(Boolean);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requestCount: async () => (await readLines()).length,
    requestsSince: async (count) =>
      (await readLines()).slice(count).map((line) => {
        const [msec, status, uri] = line.split(" ");
        return { msec: Number(msec), status: Number(status), uri: uri ?? "" };
      }),
    stop: async () => {
      if (child.exitCode === null) {
        child.kill("SIGQUIT");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
    },
  };
}
