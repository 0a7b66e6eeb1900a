// s3://bucket/key, parsed once for the exporter, the operator and the
// reference backend.

export interface S3Location {
  bucket: string;
  key: string;
}

/**
 * Parses `s3://bucket/key`; throws an Error saying what is missing. With
 * `keyOptional` a bucket or folder URI (`s3://bucket`, `s3://bucket/some/prefix/`)
 * is accepted too, and `key` is the prefix ("" for the whole bucket).
 */
export function parseS3Uri(uri: string, opts: { keyOptional?: boolean } = {}): S3Location {
  if (!/^s3:\/\//i.test(uri)) throw new Error("an S3 URI looks like s3://bucket/key");
  const rest = uri.slice("s3://".length);
  const slash = rest.indexOf("/");
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const key = slash < 0 ? "" : rest.slice(slash + 1);
  if (bucket === "") throw new Error("s3:// URI has no bucket (s3://bucket/key)");
  if (key === "" && !opts.keyOptional) throw new Error("s3:// URI has no object key (s3://bucket/key)");
  return { bucket, key };
}
