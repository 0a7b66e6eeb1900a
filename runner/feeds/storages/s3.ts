// s3:// — the storage: checks the bucket before the crawl, opens one S3BatchUpload per
// batch (s3-upload.ts: spool, multipart upload, retries, confirmation), and stores the
// manifest create-only. Uploads of all feeds share one client and one bound on the
// uploads in flight.
import { randomBytes } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  type S3ServiceException,
} from "@aws-sdk/client-s3";
import type { Logger } from "pino";
import type { StorageSpec } from "../../../crds/schema/feeds.ts";
import type { BackoffPolicy } from "../../../lib/backoff.ts";
import { parseS3Uri } from "../../../lib/s3-uri.ts";
import { Semaphore } from "../../../lib/semaphore.ts";
import type { Spool } from "../spool.ts";
import {
  describe,
  isOwnObject,
  isPreconditionFailed,
  type ObjectParams,
  objectParams,
  retrying,
  S3BatchUpload,
  TOKEN_KEY,
  type UploadContext,
} from "./s3-upload.ts";
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

/** Why a bucket cannot be used, from the error of a listing (HEAD answers carry no error code). */
function bucketProblem(err: unknown): string {
  const e = err as S3ServiceException;
  const status = e.$metadata?.httpStatusCode;
  if (e.name === "NoSuchBucket") return "does not exist";
  if (status === 403 || status === 401 || (status === 404 && e.name !== "NotFound")) {
    return `is not accessible with these credentials (${describe(err)})`;
  }
  return status === 404 ? "does not exist" : `is not reachable (${describe(err)})`;
}

/** "acl bucket-owner-full-control, storageClass STANDARD_IA" (the spec's names). */
function paramsText(p: ObjectParams): string {
  const names: [keyof ObjectParams, string][] = [
    ["ACL", "acl"],
    ["ServerSideEncryption", "serverSideEncryption"],
    ["SSEKMSKeyId", "sseKmsKeyId"],
    ["StorageClass", "storageClass"],
  ];
  return names.flatMap(([k, n]) => (p[k] ? [`${n} ${p[k]}`] : [])).join(", ");
}

export class S3Storage implements FeedStorage {
  readonly #ctx: UploadContext;
  readonly #spool: Spool;
  readonly #endpoint: string;

  constructor(opts: S3StorageOptions) {
    this.#spool = opts.spool;
    this.#endpoint = opts.spec?.endpoint ?? "AWS S3";
    this.#ctx = {
      client: opts.client ?? createS3Client(opts.spec, opts.credentials),
      partSize: opts.spec?.partSizeBytes ?? DEFAULT_PART_SIZE,
      queueSize: opts.spec?.uploadQueueSize ?? DEFAULT_QUEUE_SIZE,
      retryMs: (opts.spec?.retrySeconds ?? 300) * 1000,
      backoff: { jitter: "none", ...(opts.backoff ?? { baseMs: 1000, capMs: 30_000 }) },
      slots: new Semaphore(opts.maxConcurrentUploads ?? 4),
      live: new Set(),
      logger: opts.logger,
      objectParams: objectParams(opts.spec),
    };
  }

  /** HeadBucket, then a write check that leaves nothing behind: a multipart upload started and aborted. */
  async check(folderUri: string): Promise<void> {
    const { client } = this.#ctx;
    const { bucket, key: prefix } = parseS3Uri(folderUri, { keyOptional: true });
    try {
      await client.send(new HeadBucketCommand({ Bucket: bucket }));
    } catch (headError) {
      const err = await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 })).then(
        () => headError,
        (e) => e,
      );
      throw new Error(`bucket "${bucket}" at ${this.#endpoint} ${bucketProblem(err)}`);
    }
    const key = `${prefix}.feedcrawl-write-check-${randomBytes(4).toString("hex")}`;
    try {
      // With the feeds' own ACL, encryption and storage class: a server that refuses them fails here, before crawling.
      const params = this.#ctx.objectParams;
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ...params }));
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId }));
    } catch (err) {
      const extra = Object.keys(this.#ctx.objectParams).length
        ? ` with ${paramsText(this.#ctx.objectParams)} (spec.storage.s3)`
        : "";
      throw new Error(
        `bucket "${bucket}" at ${this.#endpoint} is not writable under "${prefix}"${extra}: ${describe(err)}`,
      );
    }
  }

  async exists(uri: string): Promise<boolean> {
    const { bucket, key } = parseS3Uri(uri);
    try {
      await this.#ctx.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return true;
    } catch {
      // 404, no read permission, or S3 unreachable: the create-only completion still guards the name.
      return false;
    }
  }

  async open(target: StoreTarget): Promise<BatchSink> {
    const file = await this.#spool.create(parseS3Uri(target.uri).key);
    return new S3BatchUpload(this.#ctx, target, file);
  }

  /** DeleteObject, retried like an upload (deleting a missing key is success in S3). */
  async remove(uri: string): Promise<void> {
    const { client, retryMs, backoff } = this.#ctx;
    const { bucket, key } = parseS3Uri(uri);
    try {
      await retrying(Date.now() + retryMs, backoff, undefined, () =>
        client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })),
      );
    } catch (err) {
      throw new Error(`deleting ${uri} failed: ${describe(err)}`);
    }
  }

  abort(): void {
    for (const upload of this.#ctx.live) upload.abort();
  }

  /** PutObject with `If-None-Match: *`, retried like an upload; a 412 of its own lost answer is success. */
  async putSmall(uri: string, body: string, contentType: string): Promise<void> {
    const { client, retryMs, backoff } = this.#ctx;
    const { bucket, key } = parseS3Uri(uri);
    const token = randomBytes(12).toString("hex");
    let taken = false;
    try {
      await retrying(Date.now() + retryMs, backoff, undefined, async () => {
        const put = {
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentType: contentType,
          IfNoneMatch: "*",
          ...this.#ctx.objectParams,
        };
        try {
          await client.send(new PutObjectCommand({ ...put, Metadata: { [TOKEN_KEY]: token } }));
        } catch (err) {
          if (!isPreconditionFailed(err)) throw err;
          taken = !(await isOwnObject(client, bucket, key, token));
        }
      });
    } catch (err) {
      throw new Error(`upload of ${uri} failed: ${describe(err)}`);
    }
    if (taken) throw new AlreadyExistsError(`${uri} already exists`);
  }
}

export function createS3Storage(opts: S3StorageOptions): FeedStorage {
  return new S3Storage(opts);
}
