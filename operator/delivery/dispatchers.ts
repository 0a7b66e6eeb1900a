// Which undici dispatcher a webhook POST connects through: the crawler's
// address guard (refuses loopback, private, link-local and metadata addresses
// on the address actually connected to, so DNS rebinding cannot get around
// it), unless the CrawlJob's ingest.webhook.allowPrivateNetworks is true (an
// in-cluster backend). One long-lived dispatcher of each kind keeps
// keep-alive connections to backends across deliveries.
import { Agent, type Dispatcher } from "undici";
import { createGuardedAgent } from "../../net/address-guard.ts";

export type DispatcherFor = (allowPrivateNetworks: boolean) => Dispatcher;

export function createDispatchers(): { dispatcherFor: DispatcherFor; close(): Promise<void> } {
  let guarded: Dispatcher | undefined;
  let open: Dispatcher | undefined;
  return {
    dispatcherFor(allowPrivateNetworks) {
      if (allowPrivateNetworks) {
        open ??= new Agent({ connections: 16 });
        return open;
      }
      guarded ??= createGuardedAgent(false, { connections: 16 });
      return guarded;
    },
    async close() {
      await Promise.all([guarded?.close(), open?.close()]);
    },
  };
}
