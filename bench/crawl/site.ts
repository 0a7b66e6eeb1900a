// The benchmark site: the fixture catalogue written as static files and
// served by nginx, plus a check that nginx is far faster than any crawler.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { type Catalogue, createCatalogue } from "../../test/fixtures/catalogue.ts";
import type { BenchContext } from "../lib/context.ts";
import { type Nginx, startNginx } from "../lib/nginx.ts";

export interface BenchSite {
  catalogue: Catalogue;
  nginx: Nginx;
  /** Listing pages + detail pages: what a correct crawl fetches. */
  pages: number;
  items: number;
}

/** Products such that listings + details ≈ the wanted page count (20 per listing page). */
export function productsForPages(pages: number, perPage = 20): number {
  return Math.floor((pages * perPage) / (perPage + 1));
}

export async function startBenchSite(ctx: BenchContext, pages: number): Promise<BenchSite> {
  const catalogue = createCatalogue({ products: productsForPages(pages), perPage: 20, seed: 6 });
  const root = join(ctx.workDir, "site");
  ctx.logger.info({ products: catalogue.products, pages: catalogue.pages + catalogue.products }, "Writing the site");
  await catalogue.writeStaticSite(root);
  const nginx = await startNginx({ root, workDir: ctx.workDir });
  return { catalogue, nginx, pages: catalogue.pages + catalogue.products, items: catalogue.products };
}

export interface ServerCeiling {
  requestsPerSecond: number;
  connections: number;
  tool: string;
}

/**
 * wrk against one detail page at the highest crawler concurrency: the
 * server's ceiling on this machine (it shares the cores with wrk, as it
 * shares them with a crawler).
 */
export async function measureServerCeiling(site: BenchSite, connections: number): Promise<ServerCeiling> {
  const path = site.catalogue.productPath(site.catalogue.product(1));
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn("wrk", ["-t1", `-c${connections}`, "-d5s", `${site.nginx.url}${path}`], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let text = "";
    child.stdout.on("data", (d) => {
      text += d;
    });
    child.stderr.on("data", (d) => {
      text += d;
    });
    child.on("error", (err) => reject(new Error(`wrk did not start (apt-get install -y wrk): ${err.message}`)));
    child.on("close", () => resolve(text));
  });
  const match = /Requests\/sec:\s+([0-9.]+)/.exec(output);
  if (!match) throw new Error(`wrk printed no Requests/sec: ${output}`);
  return { requestsPerSecond: Number(match[1]), connections, tool: "wrk -t1 -d5s" };
}
