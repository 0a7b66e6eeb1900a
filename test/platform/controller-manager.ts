// kube-controller-manager. Without a node it runs only the controllers that
// make the API behave like a cluster's for tests that play the kubelet:
// garbage collection (ownerReferences) and namespace deletion — no Job or
// Deployment controller, whose Pods would never run. With a node it runs the
// default set of a real cluster (Job, Deployment, node-lifecycle, which lifts
// the new node's not-ready taint, serviceaccount and serviceaccount-token,
// root-ca-certificate-publisher, clusterrole-aggregation, …).
import { join } from "node:path";
import { binaryPath } from "./binaries.ts";
import type { ControlPlaneCerts } from "./certs.ts";
import { ManagedProcess, tailLog } from "./process.ts";

export const API_ONLY_CONTROLLERS = "garbage-collector-controller,namespace-controller";

export async function startControllerManager(options: {
  workDir: string;
  kubeconfig: string;
  certs: ControlPlaneCerts;
  node?: boolean;
}): Promise<ManagedProcess> {
  const proc = new ManagedProcess({
    name: "kube-controller-manager",
    command: binaryPath("kube-controller-manager"),
    args: [
      `--kubeconfig=${options.kubeconfig}`,
      "--leader-elect=false",
      // 0: serve no HTTPS at all, so no authn/authz delegation is needed.
      "--secure-port=0",
      `--controllers=${options.node ? "*" : API_ONLY_CONTROLLERS}`,
      `--service-account-private-key-file=${options.certs.serviceAccountKey}`,
      `--root-ca-file=${options.certs.caCert}`,
      // The CSR signer signs with the platform's CA instead of looking for /etc/kubernetes/ca.*.
      `--cluster-signing-cert-file=${options.certs.caCert}`,
      `--cluster-signing-key-file=${options.certs.caKey}`,
      // The volume controllers would create the default /usr/libexec/kubernetes/kubelet-plugins/volume/exec/.
      `--flex-volume-plugin-dir=${join(options.workDir, "kube-controller-manager", "volume-plugins")}`,
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
