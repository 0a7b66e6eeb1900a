// Types for the undici files lib/undici.ts loads one by one: each is the
// CommonJS module behind a name undici's index exports.
declare module "undici/lib/dispatcher/dispatcher.js" {
  import { Dispatcher } from "undici";
  export default Dispatcher;
}
declare module "undici/lib/api/index.js" {
  const api: Pick<import("undici").Dispatcher, "request" | "stream" | "pipeline" | "connect" | "upgrade">;
  export default api;
}
declare module "undici/lib/dispatcher/agent.js" {
  import { Agent } from "undici";
  export default Agent;
}
declare module "undici/lib/dispatcher/proxy-agent.js" {
  import { ProxyAgent } from "undici";
  export default ProxyAgent;
}
declare module "undici/lib/core/connect.js" {
  import { buildConnector } from "undici";
  export default buildConnector;
}
declare module "undici/lib/core/errors.js" {
  import { errors } from "undici";
  export default errors;
}
