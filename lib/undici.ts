// undici's HTTP/1.1 client without the rest of the package. Its index also
// loads fetch, WebSocket, EventSource, the cache and the mock layers, which
// the operator and the runner never use (measured alone, an Agent and one
// request cost 16 MB RSS from the index and 6 MB from these files; in the
// operator, with everything else loaded, ~2 MB RSS and 2.6 MB of heap). So
// the product imports undici from here — the files behind
// the Agent, ProxyAgent and Dispatcher classes, the connector, the error
// classes and `request` — and never "undici" itself at run time (type imports
// are erased; tools/check-floors.ts refuses any other import of it). The
// classes are undici's own (one module instance): an Agent made from the
// index elsewhere (tests) is the same class.
import type * as Undici from "undici";
import api from "undici/lib/api/index.js";
import Dispatcher from "undici/lib/dispatcher/dispatcher.js";

// What undici's index does: request/stream/pipeline/connect/upgrade on every dispatcher.
Object.assign(Dispatcher.prototype, api);

export { default as buildConnector } from "undici/lib/core/connect.js";
export { default as errors } from "undici/lib/core/errors.js";
export { default as Agent } from "undici/lib/dispatcher/agent.js";
export { default as ProxyAgent } from "undici/lib/dispatcher/proxy-agent.js";
export { Dispatcher };

export type RequestOptions = Omit<Undici.Dispatcher.RequestOptions, "origin" | "path" | "method"> & {
  method?: Undici.Dispatcher.HttpMethod;
  dispatcher: Undici.Dispatcher;
};

/** undici's `request(url, options)`, with the dispatcher required (nothing here uses a global one). */
export function request(url: string | URL, options: RequestOptions): Promise<Undici.Dispatcher.ResponseData> {
  const { dispatcher, method, ...rest } = options;
  const target = typeof url === "string" ? new URL(url) : url;
  return dispatcher.request({
    ...rest,
    origin: target.origin,
    path: `${target.pathname}${target.search}`,
    method: method ?? (rest.body ? "PUT" : "GET"),
  });
}
