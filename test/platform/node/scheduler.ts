// kube-scheduler: binds pods to the node. One scheduler, no leader election,
// no HTTPS listener (like the controller manager here).
import { join } from "node:path";
import { binaryPath } from "../binaries.ts";
import { ManagedProcess, tailLog } from "../process.ts";

export async function startScheduler(options: { workDir: string; kubeconfig: string }): Promise<ManagedProcess> {
  const proc = new ManagedProcess({
    name: "kube-scheduler",
    command: binaryPath("kube-scheduler"),
    args: [`--kubeconfig=${options.kubeconfig}`, "--leader-elect=false", "--secure-port=0", "--profiling=false"],
    logFile: join(options.workDir, "logs", "kube-scheduler.log"),
  });
  proc.start();
  // No health endpoint without HTTPS: make sure it did not exit on a bad flag.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  if (proc.exited) {
    throw new Error(`kube-scheduler exited at start. Log ${proc.spec.logFile}:\n${tailLog(proc.spec.logFile)}`);
  }
  return proc;
}
