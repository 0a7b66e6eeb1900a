// Keys and certificates of a throwaway control plane, made with the openssl
// CLI (node:crypto makes keys but cannot issue X.509 certificates): a CA, the
// apiserver's serving certificate, the key that signs service-account tokens,
// and (for the node) more certificates from the same CA.
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The first address of the apiserver's --service-cluster-ip-range: the `kubernetes` Service. */
export const SERVICE_CIDR = "10.0.0.0/24";
export const KUBERNETES_SERVICE_IP = "10.0.0.1";

export interface ControlPlaneCerts {
  dir: string;
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  /** RSA private key that signs (and, public part derived, verifies) SA tokens. */
  serviceAccountKey: string;
}

export interface IssuedCert {
  cert: string;
  key: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run("openssl", args, { cwd });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") throw new Error("openssl is not installed: `apt-get install -y openssl`");
    throw new Error(`openssl ${args[0]} failed in ${cwd}: ${e.stderr ?? e.message}`);
  }
}

const days = "30";

/**
 * Issues `name`.crt/.key in the CA's folder: a server certificate for the
 * given IPs and DNS names, or a client certificate whose subject (CN, O) is
 * the user and group the apiserver or kubelet sees.
 */
export async function issueCert(
  certs: ControlPlaneCerts,
  name: string,
  options: { cn: string; org?: string; ips?: string[]; dns?: string[]; usage: "server" | "client" },
): Promise<IssuedCert> {
  const dir = certs.dir;
  const issued = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const subject = `${options.org ? `/O=${options.org}` : ""}/CN=${options.cn}`;
  await openssl(
    ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", issued.key, "-out", join(dir, `${name}.csr`), "-subj", subject],
    dir,
  );
  const sans = [...(options.ips ?? []).map((ip) => `IP:${ip}`), ...(options.dns ?? []).map((d) => `DNS:${d}`)];
  const ext = join(dir, `${name}.ext`);
  writeFileSync(
    ext,
    (sans.length > 0 ? `subjectAltName=${sans.join(",")}\n` : "") +
      `extendedKeyUsage=${options.usage === "server" ? "serverAuth" : "clientAuth"}\n` +
      "keyUsage=critical,digitalSignature,keyEncipherment\n",
  );
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      join(dir, `${name}.csr`),
      "-CA",
      certs.caCert,
      "-CAkey",
      certs.caKey,
      "-CAcreateserial",
    ].concat(["-out", issued.cert, "-days", days, "-extfile", ext]),
    dir,
  );
  return issued;
}

/**
 * A CA, the service-account key and the apiserver's serving certificate, for
 * loopback and `ips` (the node's bridge address when there is a node) and for
 * the names and address of the `kubernetes` Service, which pods use.
 */
export async function makeCerts(dir: string, options: { ips?: string[] } = {}): Promise<ControlPlaneCerts> {
  mkdirSync(dir, { recursive: true });
  const certs: ControlPlaneCerts = {
    dir,
    caCert: join(dir, "ca.crt"),
    caKey: join(dir, "ca.key"),
    servingCert: join(dir, "apiserver.crt"),
    servingKey: join(dir, "apiserver.key"),
    serviceAccountKey: join(dir, "sa.key"),
  };
  await Promise.all([
    openssl(["genrsa", "-out", certs.serviceAccountKey, "2048"], dir),
    openssl(
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", certs.caKey, "-out", certs.caCert]
        .concat(["-days", days, "-subj", "/CN=feedcrawl-test-ca"])
        .concat(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
      dir,
    ),
  ]);
  await issueCert(certs, "apiserver", {
    cn: "kube-apiserver",
    usage: "server",
    ips: ["127.0.0.1", KUBERNETES_SERVICE_IP, ...(options.ips ?? [])],
    dns: [
      "localhost",
      "kubernetes",
      "kubernetes.default",
      "kubernetes.default.svc",
      "kubernetes.default.svc.cluster.local",
    ],
  });
  return certs;
}
