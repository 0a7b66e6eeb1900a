// Compression of the byte stream before it is stored (Scrapy's `postprocessing`),
// with Node's zlib: gzip, brotli, zstd. The stored object's Content-Encoding names
// the chain; the reported `compression` is the same list.
import type { Transform } from "node:stream";
import zlib from "node:zlib";
import type { Postprocessor } from "../../crds/schema/feeds.ts";

export const CONTENT_ENCODING: Record<Postprocessor, string> = { gzip: "gzip", brotli: "br", zstd: "zstd" };
export const FILE_EXTENSION: Record<Postprocessor, string> = { gzip: ".gz", brotli: ".br", zstd: ".zst" };
const LEVELS: Record<Postprocessor, [number, number]> = { gzip: [0, 9], brotli: [0, 11], zstd: [1, 22] };

export function levelRange(p: Postprocessor): [number, number] {
  return LEVELS[p];
}

/** One compressor per postprocessing step, in order. Level defaults: gzip 6, brotli 4, zstd 3 (fast enough to keep up with a crawl). */
export function createCompressors(steps: readonly Postprocessor[], level: number | undefined): Transform[] {
  return steps.map((step) => {
    const [min, max] = LEVELS[step];
    const l = level === undefined ? undefined : Math.min(max, Math.max(min, level));
    if (step === "gzip") return zlib.createGzip({ level: l ?? 6 });
    if (step === "brotli")
      return zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: l ?? 4 } });
    return zlib.createZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: l ?? 3 } });
  });
}

/** The matching decompressors, outermost first (for readers and tests). */
export function createDecompressors(steps: readonly Postprocessor[]): Transform[] {
  return [...steps].reverse().map((step) => {
    if (step === "gzip") return zlib.createGunzip();
    if (step === "brotli") return zlib.createBrotliDecompress();
    return zlib.createZstdDecompress();
  });
}

/** "gzip", "gzip,zstd" or "none": CrawlFeed.spec.compression. */
export function compressionName(steps: readonly Postprocessor[]): string {
  return steps.length === 0 ? "none" : steps.join(",");
}

/** The HTTP Content-Encoding of the stored object, or undefined for none. */
export function contentEncoding(steps: readonly Postprocessor[]): string | undefined {
  return steps.length === 0 ? undefined : [...steps].map((s) => CONTENT_ENCODING[s]).join(", ");
}

/** The file extension the object name should end with for this chain (".gz", ".br", ".zst"). */
export function expectedExtension(steps: readonly Postprocessor[]): string {
  const last = steps[steps.length - 1];
  return last === undefined ? "" : FILE_EXTENSION[last];
}
