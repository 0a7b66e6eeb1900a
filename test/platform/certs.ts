// Keys and certificates of a throwaway control plane, made with the openssl
// CLI (node:crypto makes keys but cannot issue X.509 certificates): a CA, the
// apiserver's serving certificate for 127.0.0.1/localhost, and the key that
// signs service-account tokens.
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface ControlPlaneCerts {
  dir: string;
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  /** RSA private key that signs (and, public part derived, verifies) SA tokens. */
  serviceAccountKey: string;
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

export async function makeCerts(dir: string): Promise<ControlPlaneCerts> {
  mkdirSync(dir, { recursive: true });
  const certs: ControlPlaneCerts = {
    dir,
    caCert: join(dir, "ca.crt"),
    caKey: join(dir, "ca.key"),
    servingCert: join(dir, "apiserver.crt"),
    servingKey: join(dir, "apiserver.key"),
    serviceAccountKey: join(dir, "sa.key"),
  };
  const days = "30";
  await Promise.all([
    openssl(["genrsa", "-out", certs.serviceAccountKey, "2048"], dir),
    openssl(
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", certs.caKey, "-out", certs.caCert]
        .concat(["-days", days, "-subj", "/CN=feedcrawl-test-ca"])
        .concat(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
      dir,
    ),
    openssl(
      ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", certs.servingKey, "-out", join(dir, "apiserver.csr")].concat([
        "-subj",
        "/CN=kube-apiserver",
      ]),
      dir,
    ),
  ]);
  const ext = join(dir, "apiserver.ext");
  writeFileSync(
    ext,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n",
  );
  await openssl(
    ["x509", "-req", "-in", join(dir, "apiserver.csr"), "-CA", certs.caCert, "-CAkey", certs.caKey].concat([
      "-CAcreateserial",
      "-out",
      certs.servingCert,
      "-days",
      days,
      "-extfile",
      ext,
    ]),
    dir,
  );
  return certs;
}
