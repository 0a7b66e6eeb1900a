// CPU used by the PostgreSQL server processes that serve one database: the
// backend's cost does not stop at its own process. Polls /proc for
// "postgres: <user> <db> …" processes and keeps each one's last reading, so
// connections that close before the end are counted too (up to one poll).
import { readdir, readFile } from "node:fs/promises";

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

async function sample(database: string, into: Map<number, number>): Promise<void> {
  const pids = (await readdir("/proc")).filter((d) => /^\d+$/.test(d));
  await Promise.all(
    pids.map(async (pid) => {
      try {
        const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).replace(/\0/g, " ");
        if (!cmdline.startsWith("postgres: ") || !cmdline.split(" ").includes(database)) return;
        const stat = await readFile(`/proc/${pid}/stat`, "utf8");
        // Fields after the ")" of the command name: utime and stime are the 12th and 13th.
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const ticks = Number(fields[11]) + Number(fields[12]);
        into.set(Number(pid), ticks);
      } catch {
        // The process ended between readdir and read: its last sample stands.
      }
    }),
  );
}

export interface PgCpuMeter {
  stop(): Promise<number>;
}

export function meterPostgresCpu(database: string, intervalMs = 200): PgCpuMeter {
  const start = new Map<number, number>();
  const last = new Map<number, number>();
  let running = true;
  const first = sample(database, start).then(() => {
    for (const [pid, t] of start) last.set(pid, t);
  });
  const loop = (async () => {
    await first;
    while (running) {
      await new Promise((r) => setTimeout(r, intervalMs));
      await sample(database, last);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await sample(database, last);
      let ticks = 0;
      for (const [pid, t] of last) ticks += t - (start.get(pid) ?? 0);
      return ticks / TICKS_PER_SECOND;
    },
  };
}
