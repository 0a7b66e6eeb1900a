// The project image `localhost/feedcrawl:dev`: the repository's Dockerfile,
// unchanged, built by buildah over the local Node 24 base (NODE_IMAGE),
// offline — no network in any RUN, `npm ci` served by the host's npm cache
// through an overlay so its `npm cache clean` leaves the host's cache alone —
// then written as an OCI archive that containerd imports.
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { binaryPath } from "../binaries.ts";
import { BASE_IMAGE } from "./base.ts";
import { buildah, imageExists, imagesDir, run } from "./tools.ts";

export const IMAGE = "localhost/feedcrawl:dev";
const DEPS_IMAGE = "localhost/feedcrawl-deps:dev";
const TOOLS_IMAGE = "localhost/feedcrawl-tools:dev";
const root = resolve(import.meta.dirname, "..", "..", "..");

/** Where `npm run image` leaves the archive: a stable path for ctr, tests and users. */
export function archivePath(): string {
  return join(imagesDir(), "feedcrawl-dev.oci.tar");
}

/** The host's npm cache folder (what `npm ci` on the host fills). */
async function npmCacheDir(): Promise<string> {
  return (await run("npm", ["config", "get", "cache"])).stdout.trim();
}

const primedFile = () => join(imagesDir(), "npm-primed");
const lockHash = () =>
  createHash("sha256")
    .update(readFileSync(join(root, "package.json")))
    .update(readFileSync(join(root, "package-lock.json")))
    .digest("hex");

/**
 * Makes sure the host's npm cache holds everything the Dockerfile's `npm ci`
 * steps read (the tools stage installs every dependency, the deps stage the
 * production ones), by running `npm ci` on the host in a scratch
 * folder (the registry is asked only for what is missing). Needed because
 * the lockfile has no `resolved` URLs (this machine's npm sets
 * omit-lockfile-registry-resolved), so npm ci reads each package's
 * abbreviated packument, which the cache may hold only in its full form
 * (e.g. after an `npm view`). Skipped while package.json and the lockfile
 * are those of the last priming. Returns the seconds spent, or undefined when skipped.
 */
export async function primeNpmCache(options: { force?: boolean; verbose?: boolean } = {}): Promise<number | undefined> {
  const hash = lockHash();
  if (!options.force && existsSync(primedFile()) && readFileSync(primedFile(), "utf8") === hash) return undefined;
  const started = Date.now();
  mkdirSync(imagesDir(), { recursive: true });
  const dir = mkdtempSync(join(imagesDir(), "npm-prime-"));
  try {
    for (const f of ["package.json", "package-lock.json"]) copyFileSync(join(root, f), join(dir, f));
    await run("npm", ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"], {
      cwd: dir,
      verbose: options.verbose,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  writeFileSync(primedFile(), hash);
  return (Date.now() - started) / 1000;
}

/** `buildah bud` of the project's Dockerfile; seconds spent. */
export async function buildImage(options: { verbose?: boolean } = {}): Promise<number> {
  const started = Date.now();
  if (!(await imageExists(BASE_IMAGE))) throw new Error(`${BASE_IMAGE} is missing: make it first (ensureBase)`);
  const work = join(imagesDir(), "build");
  mkdirSync(work, { recursive: true });
  // offline=true: a tarball missing from the cache fails at once with
  // ENOTCACHED instead of retrying a network that is not there.
  const npmrc = join(work, "npmrc");
  writeFileSync(npmrc, "offline=true\n");
  const cache = await npmCacheDir();
  const bud = (target: string[]) => [
    "bud",
    ...target,
    "--layers",
    "--pull=never",
    "--network",
    "none",
    "--build-arg",
    `NODE_IMAGE=${BASE_IMAGE}`,
    "--volume",
    `${cache}:/root/.npm:O`,
    "--volume",
    `${npmrc}:/root/.npmrc:ro`,
    "--file",
    join(root, "Dockerfile"),
    root,
  ];
  // The two npm ci stages first, tagged, so that pruning untagged images below
  // keeps their layer caches (~30 s each) while dropping earlier builds' layers.
  const steps = [
    bud(["--target", "deps", "--tag", DEPS_IMAGE]),
    bud(["--target", "tools", "--tag", TOOLS_IMAGE]),
    bud(["--tag", IMAGE]),
  ];
  for (const args of steps) {
    try {
      await buildah(args, { verbose: options.verbose });
    } catch (err) {
      if (!/ENOTCACHED/.test((err as Error).message)) throw err;
      // The npm cache lost something since it was primed (npm cache clean?): prime it again, once.
      await primeNpmCache({ force: true, verbose: options.verbose });
      await buildah(args, { verbose: options.verbose });
    }
  }
  await buildah(["rmi", "--prune"]);
  return (Date.now() - started) / 1000;
}

export interface ArchiveResult {
  archive: string;
  archiveBytes: number;
  /** Uncompressed size as buildah reports it, e.g. "332 MB". */
  imageSize: string;
  /** False when the archive already held this image. */
  written: boolean;
  seconds: number;
}

/** Writes IMAGE as an OCI archive at archivePath() (replaced atomically), unless it already holds this image. */
export async function writeArchive(): Promise<ArchiveResult> {
  const started = Date.now();
  const archive = archivePath();
  const idFile = `${archive}.image-id`;
  const id = (await buildah(["inspect", "--type", "image", "--format", "{{.FromImageID}}", IMAGE])).stdout.trim();
  const current = existsSync(archive) && existsSync(idFile) && readFileSync(idFile, "utf8") === id;
  if (!current) {
    const partial = `${archive}.partial`;
    rmSync(partial, { force: true });
    await buildah(["push", "--quiet", IMAGE, `oci-archive:${partial}:${IMAGE}`]);
    renameSync(partial, archive);
    writeFileSync(idFile, id);
  }
  return {
    archive,
    archiveBytes: statSync(archive).size,
    imageSize: await imageSize(IMAGE),
    written: !current,
    seconds: (Date.now() - started) / 1000,
  };
}

/** Uncompressed size of a local image, as `buildah images` prints it. */
export async function imageSize(ref: string): Promise<string> {
  const { stdout } = await buildah(["images", "--json", ref]);
  const [image] = JSON.parse(stdout) as { size?: string }[];
  return image?.size ?? "?";
}

/** Loads the archive into the node's containerd, namespace k8s.io (the kubelet's); seconds spent. */
export async function importImage(address: string, archive = archivePath()): Promise<number> {
  const started = Date.now();
  const args = ["--address", address, "-n", "k8s.io", "images", "import", "--snapshotter", "overlayfs", archive];
  await run(binaryPath("ctr"), args);
  return (Date.now() - started) / 1000;
}
