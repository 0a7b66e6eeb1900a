// The Crawlee peer: a CheerioCrawler with the same follow rules and fields as
// examples/books-local.yaml, written the way a Crawlee user would write it.
// Items go to a jsonlines file (like the other two tools) instead of a
// Dataset, whose one-JSON-file-per-item default would slow Crawlee down.
//
// usage: node crawl.mjs START_URL CONCURRENCY OUT.jsonl
import { createWriteStream } from "node:fs";
import { CheerioCrawler, Configuration, log } from "crawlee";

const [startUrl, concurrencyArg, outFile] = process.argv.slice(2);
if (!startUrl || !concurrencyArg || !outFile) {
  console.error("usage: node crawl.mjs START_URL CONCURRENCY OUT.jsonl");
  process.exit(2);
}
const concurrency = Number(concurrencyArg);
const out = createWriteStream(outFile);
const detailPage = /\/catalogue\/[^/]+\/index\.html$/;
log.setLevel(log.LEVELS.WARNING);

const crawler = new CheerioCrawler(
  {
    // Fixed concurrency, like CONCURRENT_REQUESTS in the other two tools.
    minConcurrency: concurrency,
    maxConcurrency: concurrency,
    autoscaledPoolOptions: { desiredConcurrency: concurrency },
    maxRequestRetries: 2,
    respectRobotsTxtFile: false,
    async requestHandler({ $, request, enqueueLinks }) {
      if (detailPage.test(request.loadedUrl ?? request.url)) {
        $("article.product_page").each((_, el) => {
          const product = $(el);
          const price = /[0-9.]+/.exec(product.find("p.price_color").first().text());
          const stock = /[0-9]+/.exec(product.find("p.instock.availability").first().text());
          const image = product.find("img").first().attr("src");
          const url = request.loadedUrl ?? request.url;
          out.write(
            `${JSON.stringify({
              url,
              title: product.find("h1").first().text().trim(),
              price: price ? Number(price[0]) : null,
              stock: stock ? Number(stock[0]) : 0,
              upc: product.find("table tr").first().find("td").first().text().trim(),
              image: image ? new URL(image, url).href : null,
              tags: product
                .find("a.tag")
                .map((_, a) => $(a).text().trim())
                .get(),
            })}\n`,
          );
        });
        return;
      }
      await enqueueLinks({ selector: "ul.pager li.next a", regexps: [/\/catalogue\//] });
      await enqueueLinks({ selector: "article.product_pod h3 a", regexps: [detailPage] });
    },
  },
  new Configuration({ persistStorage: false, purgeOnStart: true }),
);

const stats = await crawler.run([startUrl]);
await new Promise((resolve) => out.end(resolve));
console.log(JSON.stringify({ crawlee: stats }));
