// The few reads the node's start needs from the apiserver (is the Node Ready,
// does the default ServiceAccount exist), over one undici agent that trusts
// the platform's CA.
import { readFileSync } from "node:fs";
import { Agent, request } from "undici";

export class ApiReader {
  readonly #agent: Agent;
  readonly #url: string;
  readonly #token: string;

  constructor(url: string, caFile: string, token: string) {
    this.#url = url;
    this.#token = token;
    this.#agent = new Agent({ connect: { ca: readFileSync(caFile) }, pipelining: 0 });
  }

  /** The object at `path`, or undefined on 404. */
  async get<T>(path: string): Promise<T | undefined> {
    const response = await request(`${this.#url}${path}`, {
      dispatcher: this.#agent,
      headers: { authorization: `Bearer ${this.#token}` },
      headersTimeout: 5000,
      bodyTimeout: 5000,
    });
    if (response.statusCode === 404) {
      await response.body.dump();
      return undefined;
    }
    if (response.statusCode !== 200) {
      throw new Error(`GET ${path}: HTTP ${response.statusCode}: ${await response.body.text()}`);
    }
    return (await response.body.json()) as T;
  }

  close(): Promise<void> {
    return this.#agent.close();
  }
}

export interface NodeObject {
  spec?: { taints?: { key: string; effect: string }[] };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

/** "Ready" when the node's Ready condition is True and the not-ready taint is gone, else why not. */
export function nodeReadiness(node: NodeObject | undefined): string {
  if (!node) return "not registered";
  const ready = node.status?.conditions?.find((c) => c.type === "Ready");
  if (ready?.status !== "True")
    return `Ready=${ready?.status ?? "unknown"} (${ready?.message ?? ready?.reason ?? "no condition yet"})`;
  const taint = node.spec?.taints?.find((t) => t.key.startsWith("node.kubernetes.io/"));
  if (taint) return `tainted ${taint.key}:${taint.effect}`;
  return "Ready";
}
