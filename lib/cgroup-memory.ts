// The most memory this container has used, as its cgroup counts it (the
// figure the kubelet's OOM kill compares with the limit): cgroup v2's
// memory.peak, or v1's memory.max_usage_in_bytes. Inside a pod both are the
// container's own files; elsewhere they are the host's or absent.
import { readFile } from "node:fs/promises";

const FILES = ["/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"];

/** Bytes, or undefined when no cgroup memory file is readable (not Linux, no memory controller). */
export async function cgroupMemoryPeakBytes(files: readonly string[] = FILES): Promise<number | undefined> {
  for (const file of files) {
    try {
      const value = Number((await readFile(file, "utf8")).trim());
      if (Number.isFinite(value)) return value;
    } catch {}
  }
  return undefined;
}
