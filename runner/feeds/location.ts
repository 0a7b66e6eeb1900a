// Where a feed URI points: an S3 object, a local file, or stdout.
import path from "node:path";
import { fileURLToPath } from "node:url";

export type FeedLocation =
  | { kind: "s3"; bucket: string; key: string }
  | { kind: "file"; path: string }
  | { kind: "stdout" };

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):/;

/** Parses a URI (or a template: placeholders stay as text). Throws an Error saying what is wrong. */
export function parseFeedLocation(uri: string): FeedLocation {
  if (uri === "stdout:" || uri === "-") return { kind: "stdout" };
  const scheme = SCHEME.exec(uri)?.[1]?.toLowerCase();
  // A one-letter "scheme" is a Windows drive (C:\…); no scheme is a plain path.
  if (scheme === undefined || scheme.length === 1) return { kind: "file", path: path.resolve(uri) };
  if (scheme === "file") {
    if (uri.startsWith("file://") && !uri.startsWith("file:///")) {
      // file://relative/path — accepted by Scrapy users in practice; resolve against the cwd.
      return { kind: "file", path: path.resolve(uri.slice("file://".length)) };
    }
    return { kind: "file", path: fileURLToPath(uri.replaceAll("%", "%25")) };
  }
  if (scheme === "s3") {
    const rest = uri.slice("s3://".length);
    if (!uri.startsWith("s3://")) throw new Error("an S3 URI looks like s3://bucket/key");
    const slash = rest.indexOf("/");
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const key = slash < 0 ? "" : rest.slice(slash + 1);
    if (bucket === "") throw new Error("s3:// URI has no bucket (s3://bucket/key)");
    if (key === "") throw new Error("s3:// URI has no object key (s3://bucket/key)");
    return { kind: "s3", bucket, key };
  }
  if (scheme === "stdout") return { kind: "stdout" };
  throw new Error(`unsupported URI scheme "${scheme}:" (use s3://, file://, a path, or stdout:)`);
}

/** The manifest's URI next to a folder URI ending in "/". */
export function joinUri(folder: string, name: string): string {
  if (folder === "") return name;
  return folder.endsWith("/") ? folder + name : `${folder}/${name}`;
}
