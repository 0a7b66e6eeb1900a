// Smoke: the S3 server is a real one: a multipart upload (several parts,
// through @aws-sdk/lib-storage) reads back byte for byte.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";
import { GetObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { createBucket, s3Client } from "../platform/fixtures.ts";

test("a 3-part multipart upload reads back identical", async () => {
  await using bucket = await createBucket("smoke-s3");
  const client = s3Client();
  try {
    const partSize = 5 * 1024 * 1024; // S3's minimum part size
    const body = randomBytes(2 * partSize + 1024 * 1024);
    const parts = new Set<number>();
    const upload = new Upload({
      client,
      params: { Bucket: bucket.name, Key: "feeds/big.bin", Body: body, ContentType: "application/octet-stream" },
      partSize,
      queueSize: 2,
      leavePartsOnError: false,
    });
    upload.on("httpUploadProgress", (progress) => {
      if (progress.part) parts.add(progress.part);
    });
    const result = await upload.done();
    assert.deepEqual([...parts].sort(), [1, 2, 3]);
    // A multipart object's ETag is "<md5 of the part md5s>-<part count>".
    assert.match(result.ETag ?? "", /-3"?$/);

    const head = await client.send(new HeadObjectCommand({ Bucket: bucket.name, Key: "feeds/big.bin" }));
    assert.equal(head.ContentLength, body.length);
    const got = await client.send(new GetObjectCommand({ Bucket: bucket.name, Key: "feeds/big.bin" }));
    const bytes = Buffer.from(await got.Body!.transformToByteArray());
    assert.equal(bytes.length, body.length);
    assert.equal(createHash("sha256").update(bytes).digest("hex"), createHash("sha256").update(body).digest("hex"));
  } finally {
    client.destroy();
  }
});
