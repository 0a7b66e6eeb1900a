// The pod network's CNI config: the platform's bridge, host-local addresses
// from the node's /24 and only two routes in a pod — its /24 and the Service
// range via the bridge address — so a pod has no default route and nothing
// it sends can leave the machine. isGateway stays false: the platform owns the
// bridge's address, and a gateway bridge would make the plugin switch on the
// host's net.ipv4.ip_forward. portmap gives hostPort support. Pod addresses
// start at .10: .1 is the node host and .2–.9 are the site hosts (bridge.ts),
// host addresses a pod must never get.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SERVICE_CIDR } from "../certs.ts";
import type { NodeNetwork } from "./bridge.ts";

/** The first pod address's last octet: above the node host (.1) and the site hosts (SITE_HOST_COUNT). */
export const FIRST_POD_OCTET = 10;

export function writeCniConfig(options: { confDir: string; ipamDir: string; net: NodeNetwork }): string {
  const { net } = options;
  mkdirSync(options.confDir, { recursive: true });
  const base = net.cidr.replace(/\.0\/24$/, "");
  const conflist = {
    cniVersion: "1.0.0",
    name: "feedcrawl",
    plugins: [
      {
        type: "bridge",
        bridge: net.bridge,
        isGateway: false,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          dataDir: options.ipamDir,
          ranges: [
            [
              {
                subnet: net.cidr,
                rangeStart: `${base}.${FIRST_POD_OCTET}`,
                rangeEnd: `${base}.250`,
                gateway: net.address,
              },
            ],
          ],
          routes: [{ dst: SERVICE_CIDR, gw: net.address }],
        },
      },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  };
  const file = join(options.confDir, "10-feedcrawl.conflist");
  writeFileSync(file, `${JSON.stringify(conflist, null, 2)}\n`);
  return file;
}
