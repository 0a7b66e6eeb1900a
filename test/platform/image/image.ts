// ensureImage(): every step from nothing to localhost/feedcrawl:dev in the
// OCI archive (and in the node's containerd), each skipped when its inputs
// did not change, one progress line per step with its expected time. Used by
// `npm run image` and by tests that need the image; one build at a time.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { BASE_IMAGE, baseInputs, baseIsCurrent, ensureBase } from "./base.ts";
import { type ArchiveResult, buildImage, IMAGE, importImage, primeNpmCache, writeArchive } from "./build.ts";
import { imagesDir, logFile, requireRoot, requireTool } from "./tools.ts";

export interface EnsureOptions {
  rebuildBase?: boolean;
  verbose?: boolean;
  /** containerd to import into; default FEEDCRAWL_CONTAINERD_ADDRESS, none when unset. */
  containerdAddress?: string;
  /** Progress lines; default console.log. */
  log?: (line: string) => void;
}

export interface ImageReport extends ArchiveResult {
  image: string;
  baseSeconds?: number;
  primeSeconds?: number;
  buildSeconds: number;
  importSeconds?: number;
  totalSeconds: number;
}

const STEPS = 5;
const s = (n: number) => `${n.toFixed(1)} s`;

/** Waits for, then takes, the build lock; a lock whose process is gone is taken over. */
async function lock(log: (line: string) => void): Promise<() => void> {
  mkdirSync(imagesDir(), { recursive: true });
  const file = join(imagesDir(), "build.lock");
  const deadline = Date.now() + 15 * 60_000;
  for (let waited = false; ; ) {
    try {
      const fd = openSync(file, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch {}
    if (Date.now() > deadline) throw new Error(`${file} is still held after 15 min; remove it if no build runs`);
    let pid = 0;
    try {
      pid = Number(readFileSync(file, "utf8"));
    } catch {}
    if (!(pid > 0)) {
      await sleep(100); // gone meanwhile, or its owner is still writing its pid
      continue;
    }
    try {
      process.kill(pid, 0);
    } catch {
      rmSync(file, { force: true }); // left by a build that was killed
      continue;
    }
    if (!waited) log(`[image] waiting for the image build of pid ${pid} to finish`);
    waited = true;
    await sleep(1000);
  }
}

export async function ensureImage(options: EnsureOptions = {}): Promise<ImageReport> {
  const log = options.log ?? ((line: string) => console.log(line));
  const verbose = options.verbose ?? false;
  const address = options.containerdAddress ?? process.env.FEEDCRAWL_CONTAINERD_ADDRESS;
  requireRoot("Building the image");
  requireTool("buildah");
  requireTool("runc");
  const started = Date.now();
  let n = 0;
  const step = (text: string) => log(`[image ${++n}/${STEPS}] ${text}`);
  const unlock = await lock(log);
  try {
    writeFileSync(logFile(), `# ${new Date().toISOString()} ensureImage\n`); // this build's log only

    const report: Partial<ImageReport> = { image: IMAGE };
    const inputs = await baseInputs();
    if (!options.rebuildBase && (await baseIsCurrent(inputs))) {
      step(`${BASE_IMAGE}: up to date (Node ${inputs.nodeVersion}, npm ${inputs.npmVersion})`);
    } else {
      requireTool("debootstrap");
      step(
        `${BASE_IMAGE}: making it — debootstrap bookworm from ${inputs.mirror} + Node ${inputs.nodeVersion}` +
          ` + npm ${inputs.npmVersion} (~50-80 s, once)`,
      );
      report.baseSeconds = (await ensureBase({ force: true, verbose })).seconds;
      log(`  made in ${s(report.baseSeconds)}`);
    }

    step("npm cache: holds every dependency of the lockfile? (~10 s after a lockfile change, else 0 s)");
    report.primeSeconds = await primeNpmCache({ verbose });
    log(
      report.primeSeconds === undefined
        ? "  lockfile unchanged since the last check"
        : `  checked in ${s(report.primeSeconds)}`,
    );

    step(`${IMAGE}: buildah bud of the Dockerfile, offline (~4 min cold, ~15 s warm)`);
    report.buildSeconds = await buildImage({ verbose });
    log(`  built in ${s(report.buildSeconds)}`);

    step("OCI archive (~5 s)");
    Object.assign(report, await writeArchive());
    log(
      `  ${report.archive}: ${(report.archiveBytes! / 1e6).toFixed(0)} MB (image ${report.imageSize} uncompressed)` +
        (report.written ? "" : ", unchanged"),
    );

    if (address) {
      step(`import into containerd at ${address}, namespace k8s.io (~10 s)`);
      report.importSeconds = await importImage(address, report.archive);
      log(`  imported in ${s(report.importSeconds)}`);
    } else if (options.containerdAddress === "") {
      step("import into a node's containerd: not here (the caller imports the archive, or needs none)");
    } else {
      step("import into the node's containerd: skipped (FEEDCRAWL_CONTAINERD_ADDRESS is not set)");
    }
    report.totalSeconds = (Date.now() - started) / 1000;
    log(`${IMAGE} ready in ${s(report.totalSeconds)}`);
    return report as ImageReport;
  } finally {
    unlock();
  }
}
