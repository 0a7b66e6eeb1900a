// The benchmark site: the fixture catalogue written as static files and
// served by nginx, plus a check that nginx is far faster than any crawler.
import { spawn } from "node:child_process";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { type Catalogue, createCatalogue } from "../../test/fixtures/catalogue.ts";
import type { BenchContext } from "../lib/context.ts";
import { type Nginx, startNginx } from "../lib/nginx.ts";
import { writeHeavySite } from "./heavy-site.ts";

/** small: books.toscrape-shaped pages of 1.5–5 KB; realistic: the same catalogue in 37–56 KB pages (heavy-site.ts). */
export type SiteKind = "small" | "realistic";

export interface BenchSite {
  kind: SiteKind;
  catalogue: Catalogue;
  /** HTML bytes of all pages. */
  bytes: number;
  nginx: Nginx;
  /** Listing pages + detail pages: what a correct crawl fetches. */
  pages: number;
  items: number;
}

/** Products such that listings + details ≈ the wanted page count (20 per listing page). */
export function productsForPages(pages: number, perPage = 20): number {
  return Math.floor((pages * perPage) / (perPage + 1));
}

export async function startBenchSite(ctx: BenchContext, pages: number, kind: SiteKind = "small"): Promise<BenchSite> {
  const catalogue = createCatalogue({ products: productsForPages(pages), perPage: 20, seed: 6 });
  const workDir = join(ctx.workDir, `site-${kind}`);
  const root = join(workDir, "www");
  ctx.logger.info(
    { kind, products: catalogue.products, pages: catalogue.pages + catalogue.products },
    "Writing the site",
  );
  const bytes =
    kind === "realistic" ? (await writeHeavySite(catalogue, root)).bytes : await writeSmall(catalogue, root);
  const nginx = await startNginx({ root, workDir });
  return { kind, catalogue, bytes, nginx, pages: catalogue.pages + catalogue.products, items: catalogue.products };
}

async function writeSmall(catalogue: Catalogue, root: string): Promise<number> {
  await catalogue.writeStaticSite(root);
  const files = await readdir(root, { recursive: true, withFileTypes: true });
  let bytes = 0;
  for (const f of files)
    if (f.isFile() && f.name.endsWith(".html")) bytes += (await stat(join(f.parentPath, f.name))).size;
  return bytes;
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
