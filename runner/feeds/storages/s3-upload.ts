// One S3 batch's upload: a multipart upload (lib-storage Upload) that reads the batch's
// spool file as it grows, completed with `If-None-Match: *` unless overwrite is set. It
// starts at open; a failed attempt is aborted (and any leftover multipart upload of the
// key swept), then started again from the spool with backoff: while the batch fills,
// indefinitely; once it is closed, for `retryMs`. Success is confirmed with a HEAD of the size.
import { randomBytes } from "node:crypto";
import type { ObjectCannedACL, ServerSideEncryption, StorageClass } from "@aws-sdk/client-s3";
import {
  AbortMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  type S3Client,
  type S3ServiceException,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { Logger } from "pino";
import type { StorageSpec } from "../../../crds/schema/feeds.ts";
import { type BackoffPolicy, backoffDelayMs } from "../../../lib/backoff.ts";
import { parseS3Uri } from "../../../lib/s3-uri.ts";
import type { Semaphore } from "../../../lib/semaphore.ts";
import { sleep } from "../../../lib/sleep.ts";
import type { SpoolFile } from "../spool.ts";
import { AlreadyExistsError, type BatchSink, type FinishOptions, StoreFailedError, type StoreTarget } from "./types.ts";

/** User metadata naming the upload that wrote an object (x-amz-meta-feedcrawl-upload). */
export const TOKEN_KEY = "feedcrawl-upload";

export function isPreconditionFailed(err: unknown): boolean {
  const e = err as S3ServiceException;
  return e?.name === "PreconditionFailed" || e?.$metadata?.httpStatusCode === 412;
}

/** S3 says the object (or key) is not there. */
export function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === "NoSuchKey" || e?.name === "NotFound" || e?.$metadata?.httpStatusCode === 404;
}

export function describe(err: unknown): string {
  const e = err as S3ServiceException & { code?: string };
  const status = e?.$metadata?.httpStatusCode;
  return `${e?.name ?? "Error"}${status ? ` (HTTP ${status})` : ""}: ${e?.message || e?.code || String(err)}`;
}

/** Runs `op` until it succeeds, with backoff, until `deadline` (epoch ms) or `signal` aborts. */
export async function retrying<T>(
  deadline: number,
  backoff: BackoffPolicy,
  signal: AbortSignal | undefined,
  op: () => Promise<T>,
): Promise<T> {
  for (let failures = 1; ; failures++) {
    try {
      return await op();
    } catch (err) {
      if (Date.now() >= deadline || signal?.aborted) throw err;
      await sleep(backoffDelayMs(failures, backoff), signal);
    }
  }
}

/** Whether the object under the key was written by the upload holding `token` (its answer may have been lost). */
export async function isOwnObject(client: S3Client, bucket: string, key: string, token: string): Promise<boolean> {
  const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).catch(() => undefined);
  return head?.Metadata?.[TOKEN_KEY] === token;
}

/** Aborts every multipart upload left on this key (a failed attempt whose abort did not get through). */
async function sweep(client: S3Client, bucket: string, key: string) {
  const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
  for (const upload of listed.Uploads ?? []) {
    if (upload.Key === key && upload.UploadId) {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: upload.UploadId }));
    }
  }
}

/** What every upload of one storage shares. */
export interface UploadContext {
  client: S3Client;
  partSize: number;
  queueSize: number;
  /** How long a closed batch keeps retrying. */
  retryMs: number;
  backoff: BackoffPolicy;
  /** Uploads in flight at once: each holds up to queueSize + 1 parts in memory; more batches wait on disk. */
  slots: Semaphore;
  /** Uploads not settled yet, so that a teardown can stop them. */
  live: Set<S3BatchUpload>;
  logger: Logger;
  /** ACL, server-side encryption and storage class of every object (from spec.storage.s3). */
  objectParams: ObjectParams;
}

/** The PutObject / CreateMultipartUpload parameters spec.storage.s3 sets on every stored object. */
export interface ObjectParams {
  ACL?: ObjectCannedACL;
  ServerSideEncryption?: ServerSideEncryption;
  SSEKMSKeyId?: string;
  StorageClass?: StorageClass;
}

export function objectParams(spec: NonNullable<StorageSpec["s3"]> | undefined): ObjectParams {
  return {
    ...(spec?.acl ? { ACL: spec.acl as ObjectCannedACL } : {}),
    ...(spec?.serverSideEncryption ? { ServerSideEncryption: spec.serverSideEncryption as ServerSideEncryption } : {}),
    ...(spec?.sseKmsKeyId ? { SSEKMSKeyId: spec.sseKmsKeyId } : {}),
    ...(spec?.storageClass ? { StorageClass: spec.storageClass as StorageClass } : {}),
  };
}

export class S3BatchUpload implements BatchSink {
  readonly #ctx: UploadContext;
  readonly #target: StoreTarget;
  readonly #file: SpoolFile;
  readonly #log: Logger;
  readonly #token = randomBytes(12).toString("hex");
  readonly #stop = new AbortController();
  readonly #uploaded: Promise<void>;
  #uri: string;
  #bucket: string;
  #key: string;
  #deadline = Number.POSITIVE_INFINITY;
  #onConflict: (() => string | undefined) | undefined;
  #current: Upload | undefined;

  constructor(ctx: UploadContext, target: StoreTarget, file: SpoolFile) {
    this.#ctx = ctx;
    this.#target = target;
    this.#file = file;
    this.#uri = target.uri;
    ({ bucket: this.#bucket, key: this.#key } = parseS3Uri(target.uri));
    this.#log = ctx.logger.child({ uri: target.uri });
    ctx.live.add(this);
    // Runs from open until the object is confirmed or the budget is spent; observed in finish().
    this.#uploaded = this.#uploadLoop();
    this.#uploaded.catch(() => {}).finally(() => ctx.live.delete(this));
  }

  write(chunk: Uint8Array): Promise<void> {
    return this.#file.append(chunk);
  }

  /** Stops the upload loop and the attempt in flight (teardown: nothing is reported). */
  abort(): void {
    this.#stop.abort();
    this.#current?.abort();
  }

  async finish({ bytes, onConflict }: FinishOptions): Promise<string> {
    this.#onConflict = onConflict;
    this.#deadline = Date.now() + this.#ctx.retryMs;
    try {
      await this.#file.finish();
      await this.#uploaded;
      await this.#confirmSize(bytes);
    } catch (err) {
      this.abort();
      const keptAt = this.#release();
      if (err instanceof AlreadyExistsError) {
        err.keptAt = keptAt;
        throw err;
      }
      throw new StoreFailedError(`upload of ${this.#uri} failed: ${describe(err)}`, keptAt, { cause: err });
    }
    await this.#file.remove();
    return this.#uri;
  }

  async discard(): Promise<void> {
    this.#stop.abort();
    await this.#current?.abort();
    await this.#file.remove();
    await this.#uploaded.catch(() => {});
    await sweep(this.#ctx.client, this.#bucket, this.#key).catch(() => {});
  }

  async keep(): Promise<string | undefined> {
    this.#stop.abort();
    await this.#current?.abort();
    await this.#file.finish().catch(() => {});
    await this.#uploaded.catch(() => {});
    await sweep(this.#ctx.client, this.#bucket, this.#key).catch(() => {});
    return this.#release();
  }

  /** The spool file stays on disk for recovery; its space goes back to the spool. */
  #release(): string {
    this.#file.release();
    this.#log.error(
      { spoolFile: this.#file.path },
      "Feed batch could not be stored; its bytes are kept in the spool file",
    );
    return this.#file.path;
  }

  /**
   * Belt and braces against a multipart upload that completed without a part (aws-sdk-js-v3#2311),
   * retried like the upload. A write-only credential may not HEAD: the completed upload then suffices.
   */
  async #confirmSize(bytes: number): Promise<void> {
    const length = await retrying(this.#deadline, this.#ctx.backoff, this.#stop.signal, async () => {
      try {
        return (await this.#ctx.client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#key })))
          .ContentLength;
      } catch (err) {
        if ((err as S3ServiceException).$metadata?.httpStatusCode === 403) return bytes;
        throw err;
      }
    });
    if (length !== bytes) throw new Error(`${this.#uri} holds ${length} bytes after upload, expected ${bytes}`);
  }

  async #uploadLoop(): Promise<void> {
    let failures = 0;
    for (;;) {
      try {
        await this.#attempt();
        return;
      } catch (err) {
        if (this.#stop.signal.aborted) throw err;
        if (isPreconditionFailed(err) && !this.#target.overwrite) {
          if (await this.#isOwnOrMoved()) return;
          continue;
        }
        failures++;
        await sweep(this.#ctx.client, this.#bucket, this.#key).catch(() => {});
        if (Date.now() >= this.#deadline) throw err;
        const delay = backoffDelayMs(failures, this.#ctx.backoff);
        this.#log.warn(
          { err: describe(err), attempt: failures, retryInMs: delay },
          "Feed upload failed: retrying from the spool",
        );
        await sleep(delay, this.#stop.signal);
        if (this.#stop.signal.aborted) throw err;
      }
    }
  }

  /**
   * The key is taken. An earlier attempt may have completed with its answer lost (a cut
   * connection): then the object is this batch's own, recognised by its upload token (true).
   * Otherwise the batch moves to the next batch id (false), or fails when there is none.
   */
  async #isOwnOrMoved(): Promise<boolean> {
    if (await isOwnObject(this.#ctx.client, this.#bucket, this.#key, this.#token)) return true;
    const next = this.#onConflict?.();
    if (next === undefined) {
      throw new AlreadyExistsError(`${this.#uri} already exists (set overwrite: true to replace it)`);
    }
    this.#log.warn(
      { existing: this.#uri, next },
      "Feed object already exists: storing the batch under the next batch id",
    );
    this.#uri = next;
    ({ bucket: this.#bucket, key: this.#key } = parseS3Uri(next));
    return false;
  }

  #attempt(): Promise<void> {
    return this.#ctx.slots.run(() => this.#uploadOnce());
  }

  async #uploadOnce(): Promise<void> {
    const body = this.#file.tail();
    const { client, partSize, queueSize } = this.#ctx;
    const target = this.#target;
    const upload = new Upload({
      client,
      partSize,
      queueSize,
      leavePartsOnError: false,
      params: {
        Bucket: this.#bucket,
        Key: this.#key,
        Body: body,
        ContentType: target.contentType,
        ...(target.contentEncoding ? { ContentEncoding: target.contentEncoding } : {}),
        ...(target.overwrite ? {} : { IfNoneMatch: "*" }),
        Metadata: { [TOKEN_KEY]: this.#token },
        ...this.#ctx.objectParams,
      },
    });
    this.#current = upload;
    try {
      await upload.done();
    } finally {
      this.#current = undefined;
      body.destroy();
    }
  }
}
