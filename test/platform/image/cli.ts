// `npm run image [-- options]`: builds localhost/feedcrawl:dev from the
// project's Dockerfile with buildah over a locally made Node 24 base, offline,
// writes it as an OCI archive, and imports it into the local node's
// containerd when FEEDCRAWL_CONTAINERD_ADDRESS is set. See docs/deploy.md.
import { parseArgs } from "node:util";
import { BASE_IMAGE } from "./base.ts";
import { archivePath, IMAGE } from "./build.ts";
import { ensureImage } from "./image.ts";
import { smokeTest } from "./smoke.ts";
import { logFile } from "./tools.ts";

const usage = `usage: npm run image [-- --smoke] [--rebuild-base] [--verbose]

Builds ${IMAGE} from the Dockerfile with buildah over ${BASE_IMAGE} made
here (Debian packages: buildah, runc, debootstrap; run as root), and writes
${archivePath()}.
With FEEDCRAWL_CONTAINERD_ADDRESS set, also imports it into that containerd.

  --smoke          then run it with runc as a restricted pod does (uid 65532,
                   read-only root, /tmp writable) and check what it prints
  --rebuild-base   make ${BASE_IMAGE} again even if its inputs did not change
  --verbose        show the tools' output (it always goes to ${logFile()})
`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      smoke: { type: "boolean", default: false },
      "rebuild-base": { type: "boolean", default: false },
      verbose: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  await ensureImage({ rebuildBase: values["rebuild-base"], verbose: values.verbose });
  if (!values.smoke) return 0;

  console.log("[image smoke] runc, as uid 65532 with a read-only root and /tmp writable (~10 s)");
  const report = await smokeTest();
  for (const r of report.runs) {
    const argv = r.args.length > 0 ? r.args.join(" ") : "(image default: feedcrawl --help)";
    console.log(`  ${argv}: exit ${r.code}, ${(r.stdout + r.stderr).split("\n")[0]}`);
  }
  console.log(
    report.writesOutsideTmp.length === 0
      ? "  start-up writes nothing outside /tmp"
      : `  writes outside /tmp: ${JSON.stringify(report.writesOutsideTmp)}`,
  );
  if (report.problems.length > 0) {
    console.error(`npm run image: the image does not run as a restricted pod:\n${report.problems.join("\n")}`);
    return 1;
  }
  return 0;
}

try {
  process.exitCode = await main();
} catch (err) {
  console.error(`npm run image: ${(err as Error).message}`);
  process.exitCode = 1;
}
