// Hostile content for the downloader and crawler tests (issue 14).
import zlib from "node:zlib";

/** `decodedMiB` MiB of links as concatenated gzip members: ~2.6 KB on the wire per MiB. */
export function gzipBomb(decodedMiB: number): Buffer {
  const unit = Buffer.from('<a href="/x">x</a>\n');
  const mib = Buffer.alloc(1 << 20);
  for (let i = 0; i < mib.length; i += unit.length) unit.copy(mib, i);
  const member = zlib.gzipSync(mib, { level: 9 });
  return Buffer.concat(Array(decodedMiB).fill(member));
}
