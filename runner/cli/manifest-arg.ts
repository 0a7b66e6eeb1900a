// The FILE.yaml argument that `feedcrawl crawl` and `feedcrawl validate` share.
import { type LoadedManifest, loadManifest } from "../../spec/validate.ts";

/**
 * Loads the one positional FILE argument. Returns the manifest and its path,
 * or exit code 2 after printing why (usage, or the read/parse error).
 */
export async function loadManifestArg(
  positionals: string[],
  usage: string,
): Promise<{ file: string; manifest: LoadedManifest } | number> {
  const file = positionals[0];
  if (!file || positionals.length > 1) {
    process.stderr.write(usage);
    return 2;
  }
  try {
    return { file, manifest: await loadManifest(file) };
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
}
