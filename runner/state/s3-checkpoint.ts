// The checkpoint of a shard's crawl state as one S3 object in the feed bucket:
// `<static folder of the first S3 feed>.feedcrawl-state/<job>-<uid>/shard-<n>.sqlite`.
// The folder is the feed template's text before its first placeholder, so it
// is the same for every pod of the shard (no %(time)s in it).
import { createReadStream, createWriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { parseS3Uri } from "../../lib/s3-uri.ts";
import { parseFeedLocation } from "../../spec/feed-location.ts";
import { describe, isNotFound, retrying } from "../feeds/storages/s3-upload.ts";
import type { CheckpointStore } from "./checkpoint.ts";

/** How long a checkpoint read or write keeps retrying (an S3 outage of minutes loses nothing; the batch waits). */
const RETRY_MS = 5 * 60_000;
const BACKOFF = { baseMs: 1000, capMs: 30_000, jitter: "none" as const };

/** The checkpoint URI of a shard, beside its first S3 feed; undefined without an S3 feed. */
export function checkpointUri(
  feedTemplates: readonly string[],
  job: { name: string; uid: string },
  shard: number,
): string | undefined {
  const folder = stateFolder(feedTemplates);
  return folder && `${folder}.feedcrawl-state/${job.name}-${job.uid}/shard-${shard}.sqlite`;
}

/**
 * Where a runner keeps its state objects in the feed bucket: the static
 * folder of the first S3 feed template (s3://bucket/a/b/ of
 * s3://bucket/a/b/%(time)s.jsonl); undefined without an S3 feed.
 */
export function stateFolder(feedTemplates: readonly string[]): string | undefined {
  const template = feedTemplates.find((t) => parseFeedLocation(t).kind === "s3");
  if (!template) return undefined;
  const staticPart = template.split("%(")[0] as string;
  return staticPart.slice(0, staticPart.lastIndexOf("/") + 1);
}

export function s3CheckpointStore(client: S3Client, uri: string): CheckpointStore {
  const { bucket, key } = parseS3Uri(uri);
  return {
    uri,
    async put(file) {
      const { size } = await stat(file);
      try {
        await retrying(Date.now() + RETRY_MS, BACKOFF, undefined, () =>
          client.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: key,
              Body: createReadStream(file),
              ContentLength: size,
              ContentType: "application/vnd.sqlite3",
            }),
          ),
        );
      } catch (err) {
        throw new Error(`writing the crawl state checkpoint ${uri} failed: ${describe(err)}`);
      }
    },
    async get(file) {
      try {
        return await retrying(Date.now() + RETRY_MS, BACKOFF, undefined, async () => {
          try {
            const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
            await pipeline(res.Body as Readable, createWriteStream(file));
            return true;
          } catch (err) {
            if (isNotFound(err)) return false;
            throw err;
          }
        });
      } catch (err) {
        throw new Error(`reading the crawl state checkpoint ${uri} failed: ${describe(err)}`);
      }
    },
  };
}
