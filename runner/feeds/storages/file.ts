// file:// and plain paths. A batch is written to a hidden temp file next to its target
// and linked into place at the end: link(2) fails when the name exists, so this is an
// exclusive create (like open's "wx") that never shows a partial file. overwrite: true renames.
import { randomBytes } from "node:crypto";
import { access, type FileHandle, link, mkdir, open, rename, rm } from "node:fs/promises";
import path from "node:path";
import { parseFeedLocation } from "../../../spec/feed-location.ts";
import { AlreadyExistsError, type BatchSink, type FeedStorage, type StoreTarget } from "./types.ts";

function localPath(uri: string): string {
  const loc = parseFeedLocation(uri);
  if (loc.kind !== "file") throw new Error(`Feed URI ${uri} is not a file path`);
  return loc.path;
}

function tempPath(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(4).toString("hex")}.part`);
}

async function writeAll(handle: FileHandle, chunk: Uint8Array) {
  let offset = 0;
  while (offset < chunk.length) offset += (await handle.write(chunk, offset)).bytesWritten;
}

export function createFileStorage(): FeedStorage {
  return {
    async check(folderUri) {
      const dir =
        folderUri.endsWith("/") || folderUri === "" ? localPath(folderUri || ".") : path.dirname(localPath(folderUri));
      try {
        await mkdir(dir, { recursive: true });
        const probe = path.join(dir, `.feedcrawl-write-check-${randomBytes(4).toString("hex")}`);
        await (await open(probe, "wx")).close();
        await rm(probe);
      } catch (err) {
        throw new Error(`cannot create files in ${dir}: ${(err as Error).message}`);
      }
    },

    async exists(uri) {
      return access(localPath(uri)).then(
        () => true,
        () => false,
      );
    },

    async open(target: StoreTarget): Promise<BatchSink> {
      let final = localPath(target.uri);
      await mkdir(path.dirname(final), { recursive: true });
      const temp = tempPath(final);
      const handle = await open(temp, "wx");
      let closed = false;
      const closeHandle = async () => {
        if (!closed) {
          closed = true;
          await handle.close();
        }
      };
      return {
        write: (chunk) => writeAll(handle, chunk),
        async finish({ onConflict }) {
          try {
            await handle.datasync();
            await closeHandle();
            for (;;) {
              if (target.overwrite) {
                await rename(temp, final);
                return `file://${final}`;
              }
              try {
                await link(temp, final);
                await rm(temp);
                return `file://${final}`;
              } catch (err) {
                if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
                const next = onConflict();
                if (next === undefined)
                  throw new AlreadyExistsError(`${final} already exists (set overwrite: true to replace it)`);
                final = localPath(next);
                await mkdir(path.dirname(final), { recursive: true });
              }
            }
          } catch (err) {
            await rm(temp, { force: true });
            throw err;
          }
        },
        async discard() {
          await closeHandle().catch(() => {});
          await rm(temp, { force: true });
        },
      };
    },

    async putSmall(uri, body) {
      const final = localPath(uri);
      await mkdir(path.dirname(final), { recursive: true });
      const temp = tempPath(final);
      const handle = await open(temp, "wx");
      try {
        await handle.writeFile(body);
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await rename(temp, final);
    },
  };
}
