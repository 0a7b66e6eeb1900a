// The Node 24 base image `localhost/node:24-slim`, made here because no
// registry is reachable: a Debian bookworm rootfs from `debootstrap
// --variant=minbase`, trimmed like debian:bookworm-slim, plus the Node binary
// the npm `node` package put in node_modules and the host npm's own package,
// laid out like the official node:24-slim (/usr/local/bin/node, npm under
// /usr/local/lib/node_modules, a `node` user with uid 1000). Rebuilt only when
// missing or when an input changes (the label io.feedcrawl.base-inputs).
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { buildah, imageLabel, imagesDir, requireRoot, requireTool, run } from "./tools.ts";

export const BASE_IMAGE = "localhost/node:24-slim";
const INPUTS_LABEL = "io.feedcrawl.base-inputs";
const SUITE = "bookworm";
const root = resolve(import.meta.dirname, "..", "..", "..");
const nodeBinary = join(root, "node_modules", "node", "bin", "node");

const debianArch: Record<string, string> = { x64: "amd64", arm64: "arm64" };

export interface BaseInputs {
  nodeVersion: string;
  npmVersion: string;
  mirror: string;
  /** Hash of the Node binary, the npm version, the suite and this recipe. */
  hash: string;
}

function nodePackageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(root, "node_modules", "node", "package.json"), "utf8")) as { version: string })
      .version;
  } catch {
    throw new Error("node_modules/node is missing: run `npm ci` first (the `node` package holds the Node 24 binary).");
  }
}

export async function baseInputs(): Promise<BaseInputs> {
  const nodeVersion = nodePackageVersion();
  if (!nodeVersion.startsWith("24.")) throw new Error(`node_modules/node is Node ${nodeVersion}, not 24.x`);
  const npmVersion = (await run("npm", ["--version"])).stdout.trim();
  const mirror = process.env.FEEDCRAWL_DEBIAN_MIRROR || "http://deb.debian.org/debian";
  const hash = createHash("sha256")
    .update(readFileSync(nodeBinary))
    .update(`\0${npmVersion}\0${SUITE}\0${process.arch}\0`)
    .update(readFileSync(new URL(import.meta.url)))
    .digest("hex")
    .slice(0, 16);
  return { nodeVersion, npmVersion, mirror, hash };
}

/** True when the base exists and was made from these inputs. */
export async function baseIsCurrent(inputs: BaseInputs): Promise<boolean> {
  return (await imageLabel(BASE_IMAGE, INPUTS_LABEL)) === inputs.hash;
}

// debian:bookworm-slim's dpkg filter: later `apt-get install`s stay slim too.
const SLIM_DPKG_CFG = `path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
`;

/** Removes what debian:bookworm-slim leaves out, and host state debootstrap copied in. */
async function trim(rootfs: string): Promise<void> {
  writeFileSync(join(rootfs, "etc/dpkg/dpkg.cfg.d/docker"), SLIM_DPKG_CFG);
  await run("sh", [
    "-ec",
    `cd "$1"
     find usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
     find usr/share/doc -mindepth 1 -type d -empty -delete
     rm -rf usr/share/man/* usr/share/info/* usr/share/groff/* usr/share/lintian/* usr/share/linda/*
     find usr/share/locale -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
     rm -rf var/lib/apt/lists/* var/cache/apt/*.bin var/cache/apt/archives/*.deb var/cache/debconf/*-old
     rm -rf var/log/* dev/* tmp/* etc/resolv.conf etc/hostname
     : > etc/hosts`,
    "trim",
    rootfs,
  ]);
}

/** The npm package of the given version as a tarball: from the npm cache, else the registry. */
async function npmTarball(version: string, dir: string): Promise<string> {
  const registry = (await run("npm", ["config", "get", "registry"])).stdout.trim().replace(/\/?$/, "/");
  const { stdout } = await run(
    "npm",
    ["pack", `${registry}npm/-/npm-${version}.tgz`, "--prefer-offline", "--pack-destination", dir, "--json"],
    { cwd: dir },
  );
  const [packed] = JSON.parse(stdout) as { filename: string }[];
  if (!packed) throw new Error(`npm pack npm@${version} printed no file`);
  return join(dir, packed.filename);
}

/** Node binary, npm, the `node` user: what the official image adds to Debian. */
async function addNode(rootfs: string, inputs: BaseInputs, work: string): Promise<void> {
  const bin = join(rootfs, "usr/local/bin");
  mkdirSync(bin, { recursive: true });
  copyFileSync(nodeBinary, join(bin, "node"));
  chmodSync(join(bin, "node"), 0o755);
  symlinkSync("node", join(bin, "nodejs"));
  const npmDir = join(rootfs, "usr/local/lib/node_modules/npm");
  mkdirSync(npmDir, { recursive: true });
  const tarball = await npmTarball(inputs.npmVersion, work);
  await run("tar", ["-xzf", tarball, "-C", npmDir, "--strip-components=1", "--no-same-owner"]);
  symlinkSync("../lib/node_modules/npm/bin/npm-cli.js", join(bin, "npm"));
  symlinkSync("../lib/node_modules/npm/bin/npx-cli.js", join(bin, "npx"));
}

export interface BaseResult {
  ref: string;
  built: boolean;
  seconds: number;
}

/** Makes BASE_IMAGE unless it exists and is current. */
export async function ensureBase(options: { force?: boolean; verbose?: boolean } = {}): Promise<BaseResult> {
  const started = Date.now();
  const inputs = await baseInputs();
  if (!options.force && (await baseIsCurrent(inputs))) return { ref: BASE_IMAGE, built: false, seconds: 0 };
  requireRoot("Making the Node 24 base image");
  const debootstrap = requireTool("debootstrap");
  const arch = debianArch[process.arch];
  if (!arch) throw new Error(`no Debian architecture for ${process.arch}`);

  mkdirSync(imagesDir(), { recursive: true });
  const work = mkdtempSync(join(imagesDir(), "base-"));
  const container = `feedcrawl-base-${process.pid}`;
  const verbose = options.verbose ?? false;
  try {
    await buildah(["from", "--name", container, "scratch"]);
    const rootfs = (await buildah(["mount", container])).stdout.trim();
    await run(debootstrap, ["--variant=minbase", `--arch=${arch}`, SUITE, rootfs, inputs.mirror], { verbose });
    await trim(rootfs);
    await addNode(rootfs, inputs, work);
    await buildah(["umount", container]);
    // In the container, as the official image does it, and a check that node and npm start.
    await buildah(
      [
        "run",
        "--network",
        "none",
        container,
        "--",
        "sh",
        "-ec",
        "groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node" +
          " && node --version && npm --version" +
          // npm leaves its compile cache in /tmp and logs in ~/.npm; the official image ends with rm -rf /tmp/*.
          " && rm -rf /tmp/* /tmp/.[!.]* /root/.npm",
      ],
      { verbose },
    );
    await buildah([
      "config",
      "--env",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "--env",
      `NODE_VERSION=${inputs.nodeVersion}`,
      "--cmd",
      "node",
      "--os",
      "linux",
      "--arch",
      arch,
      "--label",
      `${INPUTS_LABEL}=${inputs.hash}`,
      "--label",
      `org.opencontainers.image.description=Debian ${SUITE} (debootstrap minbase) + Node ${inputs.nodeVersion} + npm ${inputs.npmVersion}`,
      container,
    ]);
    await buildah(["commit", "--rm", container, BASE_IMAGE]);
  } catch (err) {
    await buildah(["rm", container], { okCodes: [0, 1, 125] });
    throw err;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { ref: BASE_IMAGE, built: true, seconds: (Date.now() - started) / 1000 };
}
