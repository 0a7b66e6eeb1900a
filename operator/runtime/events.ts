// Records core/v1 Events about an object (what `kubectl describe` shows).
// Repeats of the same reason+message on the same object are aggregated
// client-side by bumping `count` (API conventions: "accumulate repeated events
// in the client"). core/v1 rather than events.k8s.io/v1: it needs no
// microsecond eventTime/reporting fields and kubectl describe reads both.
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { KubeClient, KubeObject } from "../../kube/client.ts";
import { describeError } from "../../kube/errors.ts";
import { EVENTS } from "../../kube/resources.ts";

type EventType = "Normal" | "Warning";

interface Recorded {
  name: string;
  namespace: string;
  count: number;
  at: number;
}

const AGGREGATE_WINDOW_MS = 10 * 60_000;
const MAX_REMEMBERED = 4096;

export class EventRecorder {
  #client: KubeClient;
  #component: string;
  #host: string;
  #log: Logger;
  #recent = new Map<string, Recorded>();

  constructor(client: KubeClient, options: { component: string; host: string; logger: Logger }) {
    this.#client = client;
    this.#component = options.component;
    this.#host = options.host;
    this.#log = options.logger;
  }

  /** Never throws: an Event that cannot be written is logged, not fatal. `signal` is the reconcile's. */
  async record(obj: KubeObject, type: EventType, reason: string, message: string, signal?: AbortSignal): Promise<void> {
    const namespace = obj.metadata.namespace ?? "default";
    const key = `${obj.metadata.uid}|${type}|${reason}|${message}`;
    const now = new Date();
    const timestamp = now.toISOString().replace(/\.\d+Z$/, "Z");
    try {
      const seen = this.#recent.get(key);
      if (seen && now.getTime() - seen.at < AGGREGATE_WINDOW_MS) {
        seen.count += 1;
        seen.at = now.getTime();
        await this.#client.patch(
          EVENTS,
          seen.namespace,
          seen.name,
          { count: seen.count, lastTimestamp: timestamp },
          { signal },
        );
        return;
      }
      const name = `${obj.metadata.name}.${randomBytes(8).toString("hex")}`;
      await this.#client.create(
        EVENTS,
        {
          apiVersion: "v1",
          kind: "Event",
          metadata: { name, namespace },
          involvedObject: {
            apiVersion: obj.apiVersion,
            kind: obj.kind,
            name: obj.metadata.name,
            namespace,
            uid: obj.metadata.uid,
            resourceVersion: obj.metadata.resourceVersion,
          },
          type,
          reason,
          message: message.slice(0, 1024),
          count: 1,
          firstTimestamp: timestamp,
          lastTimestamp: timestamp,
          source: { component: this.#component, host: this.#host },
          reportingComponent: this.#component,
          reportingInstance: this.#host,
        },
        { signal },
      );
      if (this.#recent.size >= MAX_REMEMBERED) this.#recent.delete(this.#recent.keys().next().value as string);
      this.#recent.set(key, { name, namespace, count: 1, at: now.getTime() });
    } catch (err) {
      this.#recent.delete(key);
      this.#log.warn(
        { error: describeError(err), reason },
        `Could not record Event on ${obj.kind} ${obj.metadata.name}`,
      );
    }
  }
}
