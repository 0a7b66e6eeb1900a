// The realistic-weight site: the same catalogue (URLs, products, fields,
// follow structure) as the small-page site, but every page has the weight
// and depth of a real shop or news page — mega-menu navigation, inline
// scripts and styles, style attributes, JSON-LD, a nested layout 15–30
// elements deep, recommendations and comments — 15–60 KB of HTML. Three
// templates: the listing, the catalogue detail page, and the news-style
// review article (every third product). The job stays the same for every
// tool: the fields sit in `article.product_page`, the links to follow in
// `ul.pager li.next a` and `article.product_pod h3 a`; nothing outside them
// looks like either, so the generator's `expectedItem()` is still the truth.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Catalogue, prng } from "../../test/fixtures/catalogue.ts";

type Product = ReturnType<Catalogue["product"]>;

const WORDS = (
  "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore " +
  "magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo " +
  "consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla pariatur excepteur sint"
).split(" ");
const CATEGORIES = (
  "Travel Mystery Historical-Fiction Sequential-Art Classics Philosophy Romance Womens-Fiction Fiction Childrens " +
  "Religion Nonfiction Music Default Science-Fiction Sports-and-Games Add-a-comment Fantasy New-Adult Young-Adult " +
  "Science Poetry Paranormal Art Psychology Autobiography Parenting Adult-Fiction Humor Horror History Food-and-Drink"
).split(" ");

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function words(rnd: () => number, n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(WORDS[Math.floor(rnd() * WORDS.length)]!);
  return out.join(" ");
}

/** Minified-looking analytics/app code: what real pages inline by the kilobyte. */
function script(rnd: () => number, bytes: number): string {
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const name = `_${Math.floor(rnd() * 1e6).toString(36)}`;
    const part = `function ${name}(e,t){var n=e&&e.length||0;for(var r=0;r<n;r++){if(e[r]<t)return "${words(rnd, 3)}"+r}return t>${i}?window.dataLayer.push({event:"${name}",v:n}):null};`;
    parts.push(part);
    size += part.length;
  }
  return `<script>${parts.join("")}</script>`;
}

function style(rnd: () => number, rules: number): string {
  const out: string[] = [];
  for (let i = 0; i < rules; i++) {
    const c = Math.floor(rnd() * 0xffffff)
      .toString(16)
      .padStart(6, "0");
    out.push(
      `.c-${i}-${Math.floor(rnd() * 999)} .x-${i}>li:hover{color:#${c};margin:${i % 7}px ${i % 5}px;padding:0 ${i % 11}px;border-bottom:1px solid #${c}}`,
    );
  }
  return `<style>${out.join("\n")}</style>`;
}

const inline = (rnd: () => number) =>
  `style="margin:${Math.floor(rnd() * 20)}px;padding:${Math.floor(rnd() * 12)}px;color:#${Math.floor(rnd() * 0xfff).toString(16)}"`;

/** A mega menu: categories × subcategories, nested lists 6 deep. */
function megaMenu(rnd: () => number): string {
  const cats = CATEGORIES.map((c) => {
    const subs: string[] = [];
    for (let i = 0; i < 2; i++)
      subs.push(
        `<li class="menu-sub"><a href="/category/${c.toLowerCase()}/${i}.html" ${inline(rnd)}><span class="label">${c.replace(/-/g, " ")} ${i + 1}</span></a></li>`,
      );
    return `<li class="menu-item dropdown"><a class="dropdown-toggle" href="/category/${c.toLowerCase()}.html" data-toggle="dropdown">${c.replace(/-/g, " ")}</a><div class="dropdown-menu"><ul class="menu-col">${subs.join("")}</ul></div></li>`;
  });
  return `<nav class="navbar navbar-default" role="navigation"><div class="container-fluid"><div class="navbar-header"><button type="button" class="navbar-toggle" aria-expanded="false"><span class="icon-bar"></span><span class="icon-bar"></span></button><a class="navbar-brand" href="/">Books</a></div><div class="collapse navbar-collapse"><ul class="nav navbar-nav">${cats.join("")}</ul><form class="navbar-form" action="/search"><div class="form-group"><input type="text" name="q" class="form-control" placeholder="Search"></div><button class="btn">Go</button></form></div></div></nav>`;
}

function footer(rnd: () => number): string {
  const cols: string[] = [];
  for (let c = 0; c < 4; c++) {
    const links: string[] = [];
    for (let i = 0; i < 10; i++)
      links.push(`<li><a href="/info/${c}-${i}.html" ${inline(rnd)}>${words(rnd, 2)}</a></li>`);
    cols.push(`<div class="col-md-3"><h5>${words(rnd, 2)}</h5><ul class="list-unstyled">${links.join("")}</ul></div>`);
  }
  return `<footer class="site-footer"><div class="container"><div class="row">${cols.join("")}</div><p class="legal">${words(rnd, 60)}</p></div>${script(rnd, 1200)}</footer>`;
}

/** Wraps `inner` in `depth` nested layout elements (grid rows, columns, panels…). */
function nest(rnd: () => number, depth: number, inner: string): string {
  const kinds = ['div class="row"', 'div class="col-md-12"', 'section class="panel"', 'div class="wrap"'];
  let open = "";
  let close = "";
  for (let i = 0; i < depth; i++) {
    const k = kinds[i % kinds.length]!;
    open += `<${k} data-l="${i}" ${i % 3 === 0 ? inline(rnd) : ""}>`;
    close = `</${k.split(" ")[0]}>${close}`;
  }
  return open + inner + close;
}

/** Cards of other products that no follow rule or item selector matches. */
function related(rnd: () => number, cat: Catalogue, n: number): string {
  const cards: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = cat.product(1 + Math.floor(rnd() * cat.products));
    cards.push(
      `<div class="related-card" ${inline(rnd)}><div class="thumb"><img data-src="/${p.image}" alt="${esc(p.title)}" loading="lazy"></div><h4><a href="${cat.productPath(p)}" rel="nofollow" data-track="rec">${esc(p.title)}</a></h4><span class="rec-price">£${p.price.toFixed(2)}</span><button class="btn btn-cart" data-id="${p.id}">Add to basket</button></div>`,
    );
  }
  return `<aside class="recommendations"><h3>Customers also bought</h3><div class="carousel">${cards.join("")}</div></aside>`;
}

function page(rnd: () => number, title: string, body: string, depth: number): string {
  return `<!DOCTYPE html>
<html lang="en-us" class="no-js">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="description" content="${esc(words(rnd, 25))}">
<title>${esc(title)} | Books to Scrape - Sandbox</title>
<link rel="stylesheet" href="/static/oscar/css/styles.css">
<link rel="preload" href="/static/fonts/main.woff2" as="font" crossorigin>
${style(rnd, 20 + Math.floor(rnd() * 30))}
${script(rnd, 1500 + Math.floor(rnd() * 3000))}
</head>
<body id="default" class="default">
<div class="skip"><a href="#content">Skip to content</a></div>
<header class="header container-fluid"><div class="page_inner"><div class="row"><div class="col-sm-8 h1"><a href="/">Books to Scrape</a><small> We love being scraped!</small></div><div class="basket-mini">Basket total: £0.00</div></div></div></header>
${megaMenu(rnd)}
<div id="content" class="container-fluid page">${nest(rnd, depth, body)}</div>
${footer(rnd)}
${script(rnd, 800 + Math.floor(rnd() * 1500))}
</body>
</html>
`;
}

/** The product box every detail template carries: the fields, and nothing else an item selector reads. */
function productBox(p: Product, extra: string): string {
  const availability = p.stock > 0 ? `In stock (${p.stock} available)` : "Out of stock";
  const tags = p.tags.map((t) => `<a class="tag" href="/tags/${t}.html">${t}</a>`).join(" ");
  return `<article class="product_page">
<div class="row"><div class="col-sm-6"><div id="gallery" class="carousel"><div class="carousel-inner"><div class="item active"><img src="../../${p.image}" alt="${esc(p.title)}"></div></div></div></div>
<div class="col-sm-6 product_main"><h1>${esc(p.title)}</h1>
<p class="price_color">£${p.price.toFixed(2)}</p>
<p class="instock availability"><i class="icon-ok"></i>
    ${availability}
</p>
<p class="star-rating Four"><i class="icon-star"></i><i class="icon-star"></i><i class="icon-star"></i><i class="icon-star"></i></p>
<p class="tags">${tags}</p>
<form class="add-to-basket" action="/basket/add/${p.id}/" method="post"><input type="hidden" name="quantity" value="1"><button class="btn btn-primary">Add to basket</button></form>
</div></div>
${extra}
<table class="table table-striped">
<tr><th>UPC</th><td>${p.upc}</td></tr>
<tr><th>Product Type</th><td>Books</td></tr>
<tr><th>Price (excl. tax)</th><td>£${p.price.toFixed(2)}</td></tr>
<tr><th>Price (incl. tax)</th><td>£${p.price.toFixed(2)}</td></tr>
<tr><th>Availability</th><td>${availability}</td></tr>
<tr><th>Number of reviews</th><td>0</td></tr>
</table>
</article>`;
}

function jsonLd(p: Product, url: string): string {
  return `<script type="application/ld+json">${JSON.stringify({
    "@context": "https://schema.org",
    "@type": "Product",
    name: p.title,
    sku: p.upc,
    url,
    offers: { "@type": "Offer", price: p.price, priceCurrency: "GBP" },
  })}</script>`;
}

function catalogueDetail(cat: Catalogue, p: Product, rnd: () => number): string {
  const description = `<div id="product_description" class="sub-header"><h2>Product Description</h2></div><p>${words(rnd, 100 + Math.floor(rnd() * 300))}</p>`;
  const body = `<ul class="breadcrumb"><li><a href="/">Home</a></li><li><a href="/category/books.html">Books</a></li><li class="active">${esc(p.title)}</li></ul>
${productBox(p, description)}
${related(rnd, cat, 4 + Math.floor(rnd() * 8))}
${jsonLd(p, cat.productPath(p))}`;
  return page(rnd, p.title, body, 10 + Math.floor(rnd() * 8));
}

/** A news-style review: long article text, sidebar, comments; the product box sits inside the article. */
function reviewArticle(cat: Catalogue, p: Product, rnd: () => number): string {
  const paragraphs: string[] = [];
  for (let i = 0; i < 8 + Math.floor(rnd() * 12); i++)
    paragraphs.push(
      `<p class="para" ${inline(rnd)}>${words(rnd, 40 + Math.floor(rnd() * 60))} <em>${words(rnd, 3)}</em> ${words(rnd, 20)}</p>`,
    );
  const comments: string[] = [];
  for (let i = 0; i < 6 + Math.floor(rnd() * 10); i++)
    comments.push(
      `<li class="comment"><div class="comment-body"><div class="meta"><span class="author">${words(rnd, 2)}</span><time>2026-11-${String(1 + (i % 28)).padStart(2, "0")}</time></div><div class="text"><p>${words(rnd, 30 + Math.floor(rnd() * 40))}</p></div><ul class="replies"><li class="comment reply"><div class="comment-body"><p>${words(rnd, 15)}</p></div></li></ul></div></li>`,
    );
  const sidebar: string[] = [];
  for (let i = 0; i < 10; i++)
    sidebar.push(`<li><a href="/news/${Math.floor(rnd() * 9999)}.html">${words(rnd, 6)}</a></li>`);
  const body = `<div class="news-layout"><main class="article-main"><header class="article-header"><p class="kicker">Review</p><h2 class="headline">${esc(p.title)}: ${words(rnd, 6)}</h2><p class="byline">By ${words(rnd, 2)}</p></header>
<div class="article-body">${paragraphs.slice(0, 4).join("\n")}
${productBox(p, "")}
${paragraphs.slice(4).join("\n")}</div>
<section class="comments"><h3>Comments</h3><ol class="comment-list">${comments.join("")}</ol></section></main>
<aside class="sidebar"><h3>Most read</h3><ul>${sidebar.join("")}</ul>${script(rnd, 1500)}</aside></div>
${jsonLd(p, cat.productPath(p))}`;
  return page(rnd, p.title, body, 8 + Math.floor(rnd() * 8));
}

function listing(cat: Catalogue, n: number, rnd: () => number): string {
  const perPage = Math.ceil(cat.products / cat.pages);
  const prefix = n === 1 ? "catalogue/" : "";
  const pods: string[] = [];
  for (let id = (n - 1) * perPage + 1; id <= Math.min(cat.products, n * perPage); id++) {
    const p = cat.product(id);
    pods.push(`<li class="col-xs-6 col-sm-4 col-md-3 col-lg-3"><div class="pod-wrap" ${inline(rnd)}><article class="product_pod">
<div class="image_container"><a href="${prefix}${p.slug}_${p.id}/index.html"><img src="${n === 1 ? "" : "../"}${p.image}" alt="${esc(p.title)}" class="thumbnail"></a></div>
<p class="star-rating Three"><i class="icon-star"></i><i class="icon-star"></i><i class="icon-star"></i></p>
<h3><a href="${prefix}${p.slug}_${p.id}/index.html" title="${esc(p.title)}">${esc(p.title.slice(0, 30))}</a></h3>
<div class="product_price"><p class="price_color">£${p.price.toFixed(2)}</p><p class="instock availability"><i class="icon-ok"></i> In stock</p>
<form><button type="submit" class="btn btn-primary btn-block" data-loading-text="Adding...">Add to basket</button></form></div>
<div class="quick-view" hidden><p>${words(rnd, 12)}</p></div>
</article></div></li>`);
  }
  const facets = CATEGORIES.map(
    (c) =>
      `<li><label><input type="checkbox" name="cat" value="${c}"> ${c.replace(/-/g, " ")} <span class="count">(${Math.floor(rnd() * 99)})</span></label></li>`,
  ).join("");
  const pager: string[] = [];
  if (n > 1)
    pager.push(`<li class="previous"><a href="${n === 2 ? "page-1.html" : `page-${n - 1}.html`}">previous</a></li>`);
  pager.push(`<li class="current">Page ${n} of ${cat.pages}</li>`);
  if (n < cat.pages) pager.push(`<li class="next"><a href="${prefix}page-${n + 1}.html">next</a></li>`);
  const body = `<div class="row"><aside class="sidebar col-sm-4 col-md-3"><form class="facets"><ul class="facet-list">${facets}</ul></form></aside>
<div class="col-sm-8 col-md-9"><div class="page-header action"><h1>All products</h1></div><form class="form-horizontal"><strong>${perPage}</strong> results per page</form>
<section><ol class="row">${pods.join("\n")}</ol>
<div><ul class="pager">${pager.join("")}</ul></div></section></div></div>`;
  return page(rnd, n === 1 ? "All products" : `All products | Page ${n}`, body, 6 + Math.floor(rnd() * 6));
}

/** The templates by name, for tests and for the size check. */
export function heavyPageHtml(cat: Catalogue, target: { listing: number } | { product: number }): string {
  if ("listing" in target) return listing(cat, target.listing, prng(7_000_000 + target.listing));
  const p = cat.product(target.product);
  const rnd = prng(9_000_000 + p.id);
  return p.id % 3 === 0 ? reviewArticle(cat, p, rnd) : catalogueDetail(cat, p, rnd);
}

/** Writes the site as static files (the same paths as `writeStaticSite`); returns bytes written. */
export async function writeHeavySite(cat: Catalogue, dir: string): Promise<{ bytes: number }> {
  await mkdir(join(dir, "catalogue"), { recursive: true });
  let bytes = 0;
  for (let n = 1; n <= cat.pages; n++) {
    const html = heavyPageHtml(cat, { listing: n });
    bytes += Buffer.byteLength(html);
    await writeFile(n === 1 ? join(dir, "index.html") : join(dir, "catalogue", `page-${n}.html`), html);
  }
  for (let id = 1; id <= cat.products; id++) {
    const p = cat.product(id);
    const d = join(dir, "catalogue", `${p.slug}_${p.id}`);
    await mkdir(d, { recursive: true });
    const html = heavyPageHtml(cat, { product: id });
    bytes += Buffer.byteLength(html);
    await writeFile(join(d, "index.html"), html);
  }
  return { bytes };
}
