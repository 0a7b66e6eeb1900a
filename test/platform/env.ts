// What an integration test sees of the test platform. `npm test` (test/run.ts)
// or `npm run local-cluster -- up` starts the real servers once and passes
// their addresses in FEEDCRAWL_TEST_* variables; tests read them here. A test
// run without them fails loudly: the platform is never optional.
import { KubeConfig } from "@kubernetes/client-node";

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

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: integration tests need the local control plane. Run them with \`npm test\`, ` +
        "or start it with `npm run local-cluster -- up` and export the variables it prints.",
    );
  }
  return value;
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
