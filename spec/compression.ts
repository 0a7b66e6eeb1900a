// The postprocessing (compression) chain's names: Content-Encoding, file
// extension, level ranges. Pure tables, shared by validation and the exporter;
// the compressors themselves live in runner/feeds/postprocessing.ts.
import type { Postprocessor } from "../crds/schema/names.ts";

const CONTENT_ENCODING: Record<Postprocessor, string> = { gzip: "gzip", brotli: "br", zstd: "zstd" };
const FILE_EXTENSION: Record<Postprocessor, string> = { gzip: ".gz", brotli: ".br", zstd: ".zst" };
const LEVELS: Record<Postprocessor, [number, number]> = { gzip: [0, 9], brotli: [0, 11], zstd: [1, 22] };

export function levelRange(p: Postprocessor): [number, number] {
  return LEVELS[p];
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
