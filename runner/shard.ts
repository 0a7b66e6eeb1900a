// Which shard crawls a host: a stable hash of the lower-cased hostname mod the
// shard count, so every shard (and the operator) agrees without talking.

/** FNV-1a, 32 bit. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function shardForHost(hostname: string, count: number): number {
  if (count <= 1) return 0;
  return fnv1a(hostname.toLowerCase().replace(/\.$/, "")) % count;
}
