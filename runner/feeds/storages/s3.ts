// s3:// — a multipart upload (lib-storage Upload) that reads the batch's spool file
// as it grows, completed with `If-None-Match: *` unless overwrite is set. A failed
// upload is aborted (and any leftover multipart upload of that key swept), then
// started again from the spool with backoff: while the batch fills, indefinitely;
// once it is closed, for `retrySeconds`. Success is confirmed with a HEAD of the size.
import { randomBytes } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  type S3ServiceException,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { Logger } from "pino";
import type { StorageSpec } from "../../../crds/schema/feeds.ts";
import { type BackoffPolicy, backoffDelayMs } from "../../../lib/backoff.ts";
import { Semaphore } from "../../../lib/semaphore.ts";
import { sleep } from "../../../lib/sleep.ts";
import { parseFeedLocation } from "../../../spec/feed-location.ts";
import type { Spool } from "../spool.ts";
import { AlreadyExistsError, type BatchSink, type FeedStorage, type StoreTarget } from "./types.ts";

export interface S3StorageOptions {
  spec?: NonNullable<StorageSpec["s3"]>;
  client?: S3Client;
  credentials?: S3ClientConfig["credentials"];
  spool: Spool;
  logger: Logger;
  /** Multipart uploads in flight at once across all feeds (default 4): bounds memory. */
  maxConcurrentUploads?: number;
  /** Backoff between upload attempts (tests shorten it). */
  backoff?: BackoffPolicy;
}

const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
/** User metadata naming the upload that wrote an object (x-amz-meta-feedcrawl-upload). */
const TOKEN_KEY = "feedcrawl-upload";
const DEFAULT_QUEUE_SIZE = 2;

export function createS3Client(spec: S3StorageOptions["spec"], credentials?: S3ClientConfig["credentials"]): S3Client {
  return new S3Client({
    region: spec?.region ?? process.env.AWS_REGION ?? "us-east-1",
    ...(spec?.endpoint ? { endpoint: spec.endpoint } : {}),
    forcePathStyle: spec?.forcePathStyle ?? false,
    // Without explicit credentials the SDK's default chain (env, web identity, IMDS…).
    ...(credentials ? { credentials } : {}),
    // A cut connection must fail the request, not hang it: the retry loop takes over.
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
    maxAttempts: 3,
  });
}

function s3Location(uri: string) {
  const loc = parseFeedLocation(uri);
  if (loc.kind !== "s3") throw new Error(`Feed URI ${uri} is not an s3:// URI`);
  return loc;
}

function isPreconditionFailed(err: unknown): boolean {
  const e = err as S3ServiceException;
  return e?.name === "PreconditionFailed" || e?.$metadata?.httpStatusCode === 412;
}

function describe(err: unknown): string {
  const e = err as S3ServiceException & { code?: string };
  const status = e?.$metadata?.httpStatusCode;
  return `${e?.name ?? "Error"}${status ? ` (HTTP ${status})` : ""}: ${e?.message || e?.code || String(err)}`;
}

export function createS3Storage(opts: S3StorageOptions): FeedStorage {
  const client = opts.client ?? createS3Client(opts.spec, opts.credentials);
  const partSize = opts.spec?.partSizeBytes ?? DEFAULT_PART_SIZE;
  const queueSize = opts.spec?.uploadQueueSize ?? DEFAULT_QUEUE_SIZE;
  const retryMs = (opts.spec?.retrySeconds ?? 300) * 1000;
  const backoff: BackoffPolicy = { jitter: "none", ...(opts.backoff ?? { baseMs: 1000, capMs: 30_000 }) };
  const endpoint = opts.spec?.endpoint ?? "AWS S3";
  // Uploads in flight hold up to (queueSize + 1) parts in memory each; more batches wait on disk.
  const uploadSlots = new Semaphore(opts.maxConcurrentUploads ?? 4);
  /** Stops every upload loop: the exporter is being torn down. */
  const aborters = new Set<() => void>();

  /** Runs `op` until it succeeds, with backoff, until `deadline` (epoch ms). */
  async function retrying<T>(deadline: number, signal: AbortSignal | undefined, op: () => Promise<T>): Promise<T> {
    for (let failures = 1; ; failures++) {
      try {
        return await op();
      } catch (err) {
        if (Date.now() >= deadline || signal?.aborted) throw err;
        await sleep(backoffDelayMs(failures, backoff), signal);
      }
    }
  }

  /** Aborts every multipart upload left on this key (a failed attempt whose abort did not get through). */
  async function sweep(bucket: string, key: string) {
    const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
    for (const upload of listed.Uploads ?? []) {
      if (upload.Key === key && upload.UploadId) {
        await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: upload.UploadId }));
      }
    }
  }

  return {
    async check(folderUri) {
      // folderUri is "s3://bucket/some/folder/" (or "s3://bucket/").
      const rest = folderUri.slice("s3://".length);
      const slash = rest.indexOf("/");
      const bucket = slash < 0 ? rest : rest.slice(0, slash);
      const prefix = slash < 0 ? "" : rest.slice(slash + 1);
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }));
      } catch (headError) {
        // HEAD answers carry no error code; a listing says why (NoSuchBucket, InvalidAccessKeyId, …).
        const err = await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 })).then(
          () => headError,
          (e) => e,
        );
        const e = err as S3ServiceException;
        const status = e.$metadata?.httpStatusCode;
        const why =
          e.name === "NoSuchBucket"
            ? "does not exist"
            : status === 403 || status === 401 || (status === 404 && e.name !== "NotFound")
              ? `is not accessible with these credentials (${describe(err)})`
              : status === 404
                ? "does not exist"
                : `is not reachable (${describe(err)})`;
        throw new Error(`bucket "${bucket}" at ${endpoint} ${why}`);
      }
      // A write check that leaves nothing behind: start a multipart upload and abort it.
      const key = `${prefix}.feedcrawl-write-check-${randomBytes(4).toString("hex")}`;
      try {
        const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
        await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId }));
      } catch (err) {
        throw new Error(`bucket "${bucket}" at ${endpoint} is not writable under "${prefix}": ${describe(err)}`);
      }
    },

    async exists(uri) {
      const { bucket, key } = s3Location(uri);
      try {
        await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return true;
      } catch {
        // 404, no read permission, or S3 unreachable: the create-only completion still guards the name.
        return false;
      }
    },

    async open(target: StoreTarget): Promise<BatchSink> {
      let { bucket, key } = s3Location(target.uri);
      let uri = target.uri;
      const file = await opts.spool.create(key);
      const log = opts.logger.child({ uri: target.uri });
      const token = randomBytes(12).toString("hex");
      const isOwnObject = async (b: string, k: string): Promise<boolean> => {
        const head = await client.send(new HeadObjectCommand({ Bucket: b, Key: k })).catch(() => undefined);
        return head?.Metadata?.[TOKEN_KEY] === token;
      };
      const stop = new AbortController();
      const abortThis = () => {
        stop.abort();
        current?.abort();
      };
      aborters.add(abortThis);
      let deadline = Number.POSITIVE_INFINITY;
      let onConflict: (() => string | undefined) | undefined;
      let current: Upload | undefined;

      const attempt = async (): Promise<void> => {
        await uploadSlots.acquire();
        try {
          await uploadOnce();
        } finally {
          uploadSlots.release();
        }
      };
      const uploadOnce = async (): Promise<void> => {
        const body = file.tail();
        const upload = new Upload({
          client,
          partSize,
          queueSize,
          leavePartsOnError: false,
          params: {
            Bucket: bucket,
            Key: key,
            Body: body,
            ContentType: target.contentType,
            ...(target.contentEncoding ? { ContentEncoding: target.contentEncoding } : {}),
            ...(target.overwrite ? {} : { IfNoneMatch: "*" }),
            Metadata: { [TOKEN_KEY]: token },
          },
        });
        current = upload;
        try {
          await upload.done();
        } finally {
          current = undefined;
          body.destroy();
        }
      };

      // Runs from open until the object is confirmed or the budget is spent.
      const uploaded = (async (): Promise<void> => {
        let failures = 0;
        for (;;) {
          try {
            await attempt();
            return;
          } catch (err) {
            if (stop.signal.aborted) throw err;
            if (isPreconditionFailed(err) && !target.overwrite) {
              // An earlier attempt may have completed with its answer lost (a cut connection): then
              // the object under the key is this batch's own, recognised by its upload token.
              if (await isOwnObject(bucket, key)) return;
              const next = onConflict?.();
              if (next === undefined) {
                throw new AlreadyExistsError(`${uri} already exists (set overwrite: true to replace it)`);
              }
              log.warn(
                { existing: uri, next },
                "Feed object already exists: storing the batch under the next batch id",
              );
              uri = next;
              ({ bucket, key } = s3Location(next));
              continue;
            }
            failures++;
            await sweep(bucket, key).catch(() => {});
            if (Date.now() >= deadline) throw err;
            const delay = backoffDelayMs(failures, backoff);
            log.warn(
              { err: describe(err), attempt: failures, retryInMs: delay },
              "Feed upload failed: retrying from the spool",
            );
            await sleep(delay, stop.signal);
            if (stop.signal.aborted) throw err;
          }
        }
      })();
      uploaded.catch(() => {}).finally(() => aborters.delete(abortThis)); // observed in finish()

      return {
        write: (chunk) => file.append(chunk),

        async finish(finishOpts) {
          onConflict = finishOpts.onConflict;
          deadline = Date.now() + retryMs;
          await file.finish();
          try {
            await uploaded;
            // Belt and braces against a multipart upload that completed without a part (aws-sdk-js-v3#2311),
            // retried like the upload. A write-only credential may not HEAD: the completed upload then suffices.
            const length = await retrying(deadline, stop.signal, async () => {
              try {
                return (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentLength;
              } catch (err) {
                if ((err as S3ServiceException).$metadata?.httpStatusCode === 403) return finishOpts.bytes;
                throw err;
              }
            });
            if (length !== finishOpts.bytes) {
              throw new Error(`${uri} holds ${length} bytes after upload, expected ${finishOpts.bytes}`);
            }
          } catch (err) {
            file.release(); // the file stays on disk for recovery; its space goes back to the spool
            log.error({ spoolFile: file.path }, "Feed batch could not be stored; its bytes are kept in the spool file");
            throw err instanceof AlreadyExistsError ? err : new Error(`upload of ${uri} failed: ${describe(err)}`);
          }
          await file.remove();
          return uri;
        },

        async discard() {
          stop.abort();
          await current?.abort();
          await file.remove();
          await uploaded.catch(() => {});
          await sweep(bucket, key).catch(() => {});
        },
      };
    },

    abort() {
      for (const stopUpload of aborters) stopUpload();
    },

    async putSmall(uri, body, contentType) {
      const { bucket, key } = s3Location(uri);
      try {
        await retrying(Date.now() + retryMs, undefined, () =>
          client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType })),
        );
      } catch (err) {
        throw new Error(`upload of ${uri} failed: ${describe(err)}`);
      }
    },
  };
}
