// kube-controller-manager with only the controllers that make the API behave
// like a cluster's for our tests: garbage collection (ownerReferences) and
// namespace deletion. No Job/Deployment controllers: there is no kubelet, so
// tests play the Job controller's part themselves.
import { join } from "node:path";
import { binaryPath } from "./binaries.ts";
import type { ControlPlaneCerts } from "./certs.ts";
import { ManagedProcess, tailLog } from "./process.ts";

export async function startControllerManager(options: {
  workDir: string;
  kubeconfig: string;
  certs: ControlPlaneCerts;
}): Promise<ManagedProcess> {
  const proc = new ManagedProcess({
    name: "kube-controller-manager",
    command: binaryPath("kube-controller-manager"),
    args: [
      `--kubeconfig=${options.kubeconfig}`,
      "--leader-elect=false",
      // 0: serve no HTTPS at all, so no authn/authz delegation is needed.
      "--secure-port=0",
      "--controllers=garbage-collector-controller,namespace-controller",
      `--service-account-private-key-file=${options.certs.serviceAccountKey}`,
      `--root-ca-file=${options.certs.caCert}`,
      "--profiling=false",
    ],
    logFile: join(options.workDir, "logs", "kube-controller-manager.log"),
  });
  proc.start();
  // It has no health endpoint with --secure-port=0: give it a moment and make
  // sure it did not exit on a bad flag.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  if (proc.exited) {
    throw new Error(
      `kube-controller-manager exited at start. Log ${proc.spec.logFile}:\n${tailLog(proc.spec.logFile)}`,
    );
  }
  return proc;
}
