import { mkdirSync, writeFileSync } from "node:fs";
import { startPlatform } from "../platform/platform.ts";

mkdirSync("/tmp/opdev/work", { recursive: true });
const p = await startPlatform({ workDir: "/tmp/opdev/work" });
writeFileSync(
  "/tmp/opdev/env.sh",
  Object.entries(p.env)
    .map(([k, v]) => `export ${k}='${v}'`)
    .join("\n") + "\n",
);
process.stdout.write("ready\n");
const stop = async () => {
  await p.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
setInterval(() => {}, 1 << 30);
