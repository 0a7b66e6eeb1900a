// The heap a runner pod gets (operator/crawljob/runner-pod.ts: a 4 MiB young
// generation, the old one sized from the default memory limit) still parses a
// page of maxResponseBytes' 32 MiB default with as many nodes as the parser
// allows: the memory figures of docs/runner.md "Performance" do not come from
// refusing big pages. A real `feedcrawl crawl` process with the pod's
// NODE_OPTIONS.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { stringify } from "yaml";
import { DEFAULT_RUNNER_NODE_OPTIONS, DEFAULT_RUNNER_RUNTIME_ENV } from "../../operator/crawljob/runner-pod.ts";
import { DEFAULT_MAX_RESPONSE_BYTES } from "../../runner/downloader.ts";
import { startSite, type TestSite } from "./helpers.ts";

const root = new URL("../../", import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), "big-page-heap-"));
/** ~420k nodes: below the parser's 500k-node limit (runner/html.ts). */
const PRODUCTS = 35_000;
const product = (i: number) =>
  `<article class="product"><div class="card"><h3><a href="/p/${i}">Product ${i}</a></h3>` +
  `<p class="price">£${(i % 90) + 10}.00</p><ul><li>new</li><li>in stock</li></ul></div></article>\n`;

function bigPage(): string {
  const head = "<!DOCTYPE html><html><head><title>Catalogue</title></head><body><main>";
  const tail = "</main></body></html>";
  const articles = Array.from({ length: PRODUCTS }, (_, i) => product(i + 1)).join("");
  // The rest up to the limit as one long description, as a page of inline data would carry.
  const room = DEFAULT_MAX_RESPONSE_BYTES - 4096 - Buffer.byteLength(head + tail + articles) - 20;
  const text = "lorem ipsum dolor sit amet, consectetur adipiscing elit ".repeat(Math.ceil(room / 56)).slice(0, room);
  return `${head}${articles}<p class="blurb">${text}</p>${tail}`;
}

let site: TestSite;
let html: string;
before(async () => {
  html = bigPage();
  site = await startSite((_host, path) => (path === "/big.html" ? html : undefined));
});
after(async () => {
  await site?.close();
  rmSync(tmp, { recursive: true, force: true });
});

test("a 32 MiB page of ~420k nodes parses within the runner pod's heap flags", { timeout: 120_000 }, async (t) => {
  const bytes = Buffer.byteLength(html);
  assert.ok(bytes > DEFAULT_MAX_RESPONSE_BYTES - 8192 && bytes <= DEFAULT_MAX_RESPONSE_BYTES, `page of ${bytes} bytes`);
  const out = join(tmp, "items.jsonl");
  const manifest = join(tmp, "big.yaml");
  writeFileSync(
    manifest,
    stringify({
      apiVersion: "feedcrawl.io/v1alpha1",
      kind: "CrawlJob",
      metadata: { name: "big-page" },
      spec: {
        spider: {
          name: "big-page",
          startUrls: [`${site.url}/big.html`],
          extract: [
            {
              name: "product",
              itemSelector: "article.product",
              fields: {
                title: { selector: "h3 a", text: true, required: true },
                price: { selector: "p.price", text: true, regex: "[0-9]+\\.[0-9]+", type: "number" },
              },
            },
          ],
          settings: { robotsTxtObey: false, allowPrivateNetworks: ["127.0.0.0/8"] },
        },
        feeds: { [`file://${out}`]: { format: "jsonlines" } },
      },
    }),
  );
  const child = spawn(process.execPath, [join(root, "bin/feedcrawl.ts"), "crawl", manifest], {
    cwd: tmp,
    env: { ...process.env, ...DEFAULT_RUNNER_RUNTIME_ENV },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  t.diagnostic(`NODE_OPTIONS=${DEFAULT_RUNNER_NODE_OPTIONS}, exit ${code}`);
  assert.equal(code, 0, stderr.slice(-2000));
  const items = readFileSync(out, "utf8").trim().split("\n");
  assert.equal(items.length, PRODUCTS);
  assert.deepEqual(JSON.parse(items.at(-1)!), { title: `Product ${PRODUCTS}`, price: (PRODUCTS % 90) + 10 });
});
