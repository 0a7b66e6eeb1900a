// Compression of the byte stream before it is stored (Scrapy's `postprocessing`),
// with Node's zlib: gzip, brotli, zstd. The stored object's Content-Encoding names
// the chain (spec/compression.ts); the reported `compression` is the same list.
import type { Transform } from "node:stream";
import zlib from "node:zlib";
import type { Postprocessor } from "../../crds/schema/names.ts";
import { levelRange } from "../../spec/compression.ts";

/** One compressor per postprocessing step, in order. Level defaults: gzip 6, brotli 4, zstd 3 (fast enough to keep up with a crawl). */
export function createCompressors(steps: readonly Postprocessor[], level: number | undefined): Transform[] {
  return steps.map((step) => {
    const [min, max] = levelRange(step);
    const l = level === undefined ? undefined : Math.min(max, Math.max(min, level));
    if (step === "gzip") return zlib.createGzip({ level: l ?? 6 });
    if (step === "brotli")
      return zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: l ?? 4 } });
    return zlib.createZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: l ?? 3 } });
  });
}
