// For the S3 integration tests: a bucket of its own on the platform's S3 server
// (versitygw), an independent reader, and toxiproxy proxies in front of S3.
import { randomBytes } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";
import { platform } from "../platform/env.ts";

export function directClient(endpoint = platform().s3.endpoint): S3Client {
  const p = platform().s3;
  return new S3Client({
    endpoint,
    region: p.region,
    forcePathStyle: true,
    credentials: { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey },
    maxAttempts: 1,
  });
}

export async function createBucket(client: S3Client, prefix: string): Promise<string> {
  const bucket = `${prefix}-${randomBytes(4).toString("hex")}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

export async function listKeys(client: S3Client, bucket: string, prefix = ""): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.NextContinuationToken;
  } while (token);
  return keys.sort();
}

export async function getObject(client: S3Client, bucket: string, key: string) {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const body = Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
  return { body, contentType: res.ContentType, contentEncoding: res.ContentEncoding };
}

export async function listMultipartUploads(client: S3Client, bucket: string) {
  return (await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];
}

/** Empties and deletes the bucket (objects and multipart uploads). */
export async function dropBucket(client: S3Client, bucket: string) {
  for (const u of await listMultipartUploads(client, bucket).catch(() => [])) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
  }
  for (const key of await listKeys(client, bucket).catch(() => [])) {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }
  await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
}

/** A toxiproxy proxy in front of the S3 server; `endpoint` goes through it. */
export class S3Proxy {
  readonly name: string;
  endpoint = "";
  private readonly admin: string;

  constructor() {
    this.admin = platform().toxiproxyUrl;
    this.name = `feeds-s3-${randomBytes(4).toString("hex")}`;
  }

  private async call(method: string, path: string, body?: unknown) {
    const res = await fetch(`${this.admin}${path}`, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`toxiproxy ${method} ${path}: HTTP ${res.status} ${await res.text()}`);
    return res.status === 204 ? undefined : res.json();
  }

  async start() {
    const upstream = new URL(platform().s3.endpoint);
    const proxy = (await this.call("POST", "/proxies", {
      name: this.name,
      listen: "127.0.0.1:0",
      upstream: `${upstream.hostname}:${upstream.port}`,
      enabled: true,
    })) as { listen: string };
    this.endpoint = `http://${proxy.listen}`;
    return this;
  }

  /** Closes every connection once it has carried `bytes` towards S3: part uploads larger than that fail. */
  async cutAfter(bytes: number) {
    await this.call("POST", `/proxies/${this.name}/toxics`, {
      name: "cut",
      type: "limit_data",
      stream: "upstream",
      attributes: { bytes },
    });
  }

  async heal() {
    await this.call("DELETE", `/proxies/${this.name}/toxics/cut`).catch(() => {});
  }

  /** Disabled: connections are refused, as if the S3 server were down. */
  async setEnabled(enabled: boolean) {
    await this.call("POST", `/proxies/${this.name}`, { enabled });
  }

  async stop() {
    await this.call("DELETE", `/proxies/${this.name}`).catch(() => {});
  }
}
