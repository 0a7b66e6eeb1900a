"""The Scrapy peer: a CrawlSpider with the same follow rules and fields as
examples/books-local.yaml, written the way a Scrapy user would write it.

Run by bench/crawl/throughput.ts as
  python3 -m scrapy runspider books_spider.py -a start_url=URL -s CONCURRENT_REQUESTS=N ... -s FEEDS=...
so every setting that matters is on the command line of the recorded run.
"""
import re
from urllib.parse import urlparse

from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule

NUMBER = re.compile(r"[0-9.]+")
INTEGER = re.compile(r"[0-9]+")


class BooksSpider(CrawlSpider):
    name = "books"

    # Listing pages are followed for their links; detail pages give the items.
    rules = (
        Rule(LinkExtractor(restrict_css="ul.pager li.next", allow=r"/catalogue/")),
        Rule(
            LinkExtractor(restrict_css="article.product_pod h3", allow=r"/catalogue/[^/]+/index\.html$"),
            callback="parse_item",
        ),
    )

    def __init__(self, start_url=None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.start_urls = [start_url]
        self.allowed_domains = [urlparse(start_url).hostname]

    def parse_item(self, response):
        for product in response.css("article.product_page"):
            price = NUMBER.search(product.css("p.price_color::text").get(default=""))
            stock = INTEGER.search(" ".join(product.css("p.instock.availability ::text").getall()))
            image = product.css("img::attr(src)").get()
            yield {
                "url": response.url,
                "title": product.css("h1::text").get(default="").strip(),
                "price": float(price.group()) if price else None,
                "stock": int(stock.group()) if stock else 0,
                "upc": product.css("table tr:first-child td::text").get(default="").strip(),
                "image": response.urljoin(image) if image else None,
                "tags": [t.strip() for t in product.css("a.tag::text").getall()],
            }
