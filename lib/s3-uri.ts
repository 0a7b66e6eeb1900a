// s3://bucket/key, parsed once for the exporter, the operator and the
// reference backend.

export interface S3Location {
  bucket: string;
  key: string;
}

/** Parses `s3://bucket/key`; throws an Error saying what is missing. */
export function parseS3Uri(uri: string): S3Location {
  if (!/^s3:\/\//i.test(uri)) throw new Error("an S3 URI looks like s3://bucket/key");
  const rest = uri.slice("s3://".length);
  const slash = rest.indexOf("/");
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const key = slash < 0 ? "" : rest.slice(slash + 1);
  if (bucket === "") throw new Error("s3:// URI has no bucket (s3://bucket/key)");
  if (key === "") throw new Error("s3:// URI has no object key (s3://bucket/key)");
  return { bucket, key };
}
