// A hand-written SVG of the two headline numbers: crawl throughput per tool
// and concurrency, and the HTTP requests the backend receives per delivery
// style (log scale). No chart library: it is a few rectangles.
import { fmt } from "./stats.ts";

export interface ChartInput {
  throughput: { concurrency: number; tool: string; pagesPerSecond: number; valid: boolean }[];
  requests: { label: string; requests: number }[];
  items: number;
  title: string;
}

const COLORS: Record<string, string> = {
  feedcrawl: "#2563eb",
  "feedcrawl-cli": "#60a5fa",
  scrapy: "#16a34a",
  crawlee: "#ea580c",
};
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function renderChart(input: ChartInput): string {
  const W = 960;
  const H = 420;
  const top = 70;
  const bottom = 350;
  const plotH = bottom - top;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="600">${esc(input.title)}</text>`,
  );

  // Left panel: pages/s.
  const lx = 60;
  const lw = 400;
  out.push(
    `<text x="${lx + lw / 2}" y="50" text-anchor="middle" font-weight="600">Crawl throughput, pages/s (median, higher is better)</text>`,
  );
  const maxPps = Math.max(1, ...input.throughput.map((t) => t.pagesPerSecond).filter(Number.isFinite));
  const concurrencies = [...new Set(input.throughput.map((t) => t.concurrency))];
  const tools = [...new Set(input.throughput.map((t) => t.tool))];
  const groupW = lw / Math.max(1, concurrencies.length);
  const barW = Math.min(40, (groupW - 30) / Math.max(1, tools.length));
  out.push(`<line x1="${lx}" y1="${bottom}" x2="${lx + lw}" y2="${bottom}" stroke="#333"/>`);
  concurrencies.forEach((c, gi) => {
    const gx = lx + gi * groupW + (groupW - barW * tools.length) / 2;
    tools.forEach((tool, ti) => {
      const t = input.throughput.find((x) => x.concurrency === c && x.tool === tool);
      if (!t || !Number.isFinite(t.pagesPerSecond)) return;
      const h = (t.pagesPerSecond / maxPps) * plotH;
      const x = gx + ti * barW;
      out.push(
        `<rect x="${x + 2}" y="${bottom - h}" width="${barW - 4}" height="${h}" fill="${COLORS[tool] ?? "#666"}"${t.valid ? "" : ' fill-opacity="0.35"'}/>`,
      );
      out.push(
        `<text x="${x + barW / 2}" y="${bottom - h - 4}" text-anchor="middle">${fmt(t.pagesPerSecond, 0)}${t.valid ? "" : "*"}</text>`,
      );
    });
    out.push(
      `<text x="${lx + gi * groupW + groupW / 2}" y="${bottom + 18}" text-anchor="middle">concurrency ${c}</text>`,
    );
  });
  tools.forEach((tool, i) => {
    const x = lx + i * 110;
    out.push(`<rect x="${x}" y="${bottom + 34}" width="12" height="12" fill="${COLORS[tool] ?? "#666"}"/>`);
    out.push(`<text x="${x + 16}" y="${bottom + 44}">${esc(tool)}</text>`);
  });

  // Right panel: backend requests, log scale.
  const rx = 540;
  const rw = 380;
  out.push(
    `<text x="${rx + rw / 2}" y="50" text-anchor="middle" font-weight="600">Backend HTTP requests for ${fmt(input.items, 0)} items (log scale)</text>`,
  );
  const maxReq = Math.max(10, ...input.requests.map((r) => r.requests));
  const decades = Math.ceil(Math.log10(maxReq));
  // Half a decade below 1, so a single request still shows as a bar.
  const y = (v: number) => bottom - ((Math.log10(Math.max(1, v)) + 0.5) / (decades + 0.5)) * plotH;
  for (let d = 0; d <= decades; d++) {
    const yy = y(10 ** d);
    out.push(`<line x1="${rx}" y1="${yy}" x2="${rx + rw}" y2="${yy}" stroke="#e5e7eb"/>`);
    out.push(`<text x="${rx - 6}" y="${yy + 4}" text-anchor="end" fill="#555">${fmt(10 ** d, 0)}</text>`);
  }
  out.push(`<line x1="${rx}" y1="${bottom}" x2="${rx + rw}" y2="${bottom}" stroke="#333"/>`);
  const slot = rw / Math.max(1, input.requests.length);
  input.requests.forEach((r, i) => {
    const x = rx + i * slot + slot * 0.2;
    const yy = y(r.requests);
    const fill = i === 0 ? "#16a34a" : "#2563eb";
    out.push(`<rect x="${x}" y="${yy}" width="${slot * 0.6}" height="${bottom - yy}" fill="${fill}"/>`);
    out.push(`<text x="${x + slot * 0.3}" y="${yy - 4}" text-anchor="middle">${fmt(r.requests, 0)}</text>`);
    out.push(`<text x="${x + slot * 0.3}" y="${bottom + 18}" text-anchor="middle">${esc(r.label)}</text>`);
  });
  out.push(
    `<text x="${rx}" y="${bottom + 44}" fill="#555">green: a POST per item; blue: a webhook per feed file</text>`,
  );
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
