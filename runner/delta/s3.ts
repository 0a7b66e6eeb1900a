// The delta store of a runner pod: one gzipped JSON object per shard in the
// feed bucket, beside the crawl-state checkpoints (runner/state/s3-checkpoint.ts):
// `<static folder of the first S3 feed>.feedcrawl-delta/<namespace>/<key>/shard-<n>-of-<count>.json.gz`.
// The key is the CrawlSchedule's name for a scheduled CrawlJob, else
// settings.delta.key. A shard crawls the same hosts every run while the shard
// count stays; another count starts from an empty state (everything is new once).
import { promisify } from "node:util";
import zlib from "node:zlib";
import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { parseS3Uri } from "../../lib/s3-uri.ts";
import { describe, isNotFound, retrying } from "../feeds/storages/s3-upload.ts";
import { stateFolder } from "../state/s3-checkpoint.ts";
import { type DeltaSnapshot, type DeltaStore, emptySnapshot, type Validators } from "./store.ts";

const gzip = promisify(zlib.gzip);
const gunzip = promisify(zlib.gunzip);
const RETRY_MS = 5 * 60_000;
const BACKOFF = { baseMs: 1000, capMs: 30_000, jitter: "none" as const };

/** The object's URI; undefined without an S3 feed. */
export function deltaUri(
  feedTemplates: readonly string[],
  where: { namespace: string; key: string },
  shard: { index: number; count: number },
): string | undefined {
  const folder = stateFolder(feedTemplates);
  return (
    folder && `${folder}.feedcrawl-delta/${where.namespace}/${where.key}/shard-${shard.index}-of-${shard.count}.json.gz`
  );
}

interface Stored {
  version: 1;
  validators: Array<[string, Validators]>;
  items: string[];
}

export class S3DeltaStore implements DeltaStore {
  readonly where: string;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #key: string;
  /** What load returned: save writes it merged with the changes (the object is rewritten whole). */
  #state = emptySnapshot();

  constructor(client: S3Client, uri: string) {
    this.where = uri;
    this.#client = client;
    ({ bucket: this.#bucket, key: this.#key } = parseS3Uri(uri));
  }

  async load(): Promise<DeltaSnapshot> {
    const body = await this.#retry("reading", async () => {
      try {
        const res = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key }));
        return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    });
    if (body) {
      const stored = JSON.parse(String(await gunzip(body))) as Stored;
      this.#state = { validators: new Map(stored.validators), items: new Set(stored.items) };
    }
    return { validators: new Map(this.#state.validators), items: new Set(this.#state.items) };
  }

  async save(changes: DeltaSnapshot): Promise<void> {
    for (const [url, v] of changes.validators) this.#state.validators.set(url, v);
    for (const h of changes.items) this.#state.items.add(h);
    const stored: Stored = { version: 1, validators: [...this.#state.validators], items: [...this.#state.items] };
    const body = await gzip(JSON.stringify(stored));
    await this.#retry("writing", () =>
      this.#client.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: this.#key,
          Body: body,
          ContentLength: body.length,
          ContentType: "application/json",
          ContentEncoding: "gzip",
        }),
      ),
    );
  }

  async #retry<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await retrying(Date.now() + RETRY_MS, BACKOFF, undefined, op);
    } catch (err) {
      throw new Error(`${what} the delta state ${this.where} failed: ${describe(err)}`);
    }
  }

  async close(): Promise<void> {}
}
