// What an integration test sees of the test platform. `npm test` (test/run.ts)
// or `npm run local-cluster -- up` starts the real servers once and passes
// their addresses in FEEDCRAWL_TEST_* variables (and FEEDCRAWL_NODE_* with a
// node); tests read them here. A test run without them fails loudly: the
// platform is never optional.
import { KubeConfig } from "@kubernetes/client-node";
import { IMAGE } from "./image/build.ts";

export interface TestPlatform {
  /** kubeconfig of the admin user (token auth, system:masters). */
  kubeconfig: string;
  apiServerUrl: string;
  /** CA that signed the apiserver's serving certificate. */
  caFile: string;
  s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string };
  /** toxiproxy's admin API, e.g. http://127.0.0.1:8474. */
  toxiproxyUrl: string;
  /** Folder of the platform's logs and data; tests may put files under it. */
  workDir: string;
}

function required(name: string, what = "integration tests need the local control plane"): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: ${what}. Run them with \`npm test\`, ` +
        "or start it with `npm run local-cluster -- up` and export the variables it prints.",
    );
  }
  return value;
}

/** The real node (tests named *.node.test.ts get it). */
export interface TestNode {
  /** The bridge address: node IP, pods' gateway; the host address pods reach (S3, the apiserver listen on it). */
  host: string;
  /** More host addresses pods reach, for fixture sites on distinct hosts (the runner shards by hostname). */
  siteHosts: string[];
  /** The Node object's name. */
  name: string;
  /** containerd's socket, for `ctr --address … -n k8s.io images import`. */
  containerdAddress: string;
  /**
   * The project image built from the Dockerfile: `npm test` imports it into the
   * node before the node tests run (by hand: `npm run image` with the exports of
   * `local-cluster up`). Pods use it with `imagePullPolicy: Never`.
   */
  image: string;
}

const NODE_WHAT = "node tests (*.node.test.ts) need the local cluster's real node";

export function node(): TestNode {
  return {
    host: required("FEEDCRAWL_NODE_HOST", NODE_WHAT),
    siteHosts: required("FEEDCRAWL_NODE_SITE_HOSTS", NODE_WHAT).split(","),
    name: required("FEEDCRAWL_NODE_NAME", NODE_WHAT),
    containerdAddress: required("FEEDCRAWL_CONTAINERD_ADDRESS", NODE_WHAT),
    image: IMAGE,
  };
}

/**
 * Host addresses for fixture sites that pods reach, each a distinct hostname:
 * `server.listen(port, siteHosts()[i])`. Eight (.2–.9); the runner shards by
 * hostname, so pick the ones that cover the shards you need (with the default
 * range they cover every shard of 2, 3 or 4).
 */
export function siteHosts(): string[] {
  return node().siteHosts;
}

export function platform(): TestPlatform {
  return {
    kubeconfig: required("FEEDCRAWL_TEST_KUBECONFIG"),
    apiServerUrl: required("FEEDCRAWL_TEST_APISERVER"),
    caFile: required("FEEDCRAWL_TEST_CA"),
    s3: {
      endpoint: required("FEEDCRAWL_TEST_S3_ENDPOINT"),
      region: process.env.FEEDCRAWL_TEST_S3_REGION ?? "us-east-1",
      accessKeyId: required("FEEDCRAWL_TEST_S3_ACCESS_KEY"),
      secretAccessKey: required("FEEDCRAWL_TEST_S3_SECRET_KEY"),
    },
    toxiproxyUrl: required("FEEDCRAWL_TEST_TOXIPROXY"),
    workDir: required("FEEDCRAWL_TEST_WORKDIR"),
  };
}

/** A KubeConfig for the admin user of the test control plane. */
export function adminKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(platform().kubeconfig);
  return kc;
}
