// Where a feed URI points: an S3 object, a local file, or stdout.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseS3Uri } from "../lib/s3-uri.ts";

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
  if (scheme === "s3") return { kind: "s3", ...parseS3Uri(uri) };
  if (scheme === "stdout") return { kind: "stdout" };
  throw new Error(`unsupported URI scheme "${scheme}:" (use s3://, file://, a path, or stdout:)`);
}

/** The manifest's URI next to a folder URI ending in "/". */
export function joinUri(folder: string, name: string): string {
  if (folder === "") return name;
  return folder.endsWith("/") ? folder + name : `${folder}/${name}`;
}
