// Leader election on a coordination.k8s.io/v1 Lease, as client-go's
// leaderelection does it, with controller-runtime's timings (lease 15 s, renew
// deadline 10 s, retry 2 s):
// - a candidate takes the Lease when it is free or its holder has not renewed
//   for leaseDuration, measured on the candidate's own clock from when it last
//   saw the record change (no clock-skew trust);
// - every write is an update with the read resourceVersion, so two candidates
//   cannot both win the same round (409 for the loser);
// - the leader renews every retry period; if it cannot renew for renewDeadline
//   it stops leading (onStoppedLeading — the operator exits, like
//   controller-runtime) before anyone else may take over;
// - on graceful shutdown it releases the Lease (empty holder), so a successor
//   does not wait out the lease.
// A Lease is not fencing: the operator's writes also carry resourceVersion
// preconditions, so a deposed leader cannot clobber newer state.
import type { Logger } from "pino";
import type { KubeClient, KubeObject } from "../../kube/client.ts";
import { describeError, isAlreadyExists, isConflict, isNotFound } from "../../kube/errors.ts";
import { LEASES } from "../../kube/resources.ts";
import { leaderStatus } from "../metrics.ts";

interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  logger: Logger;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

interface Lease extends KubeObject {
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

/** RFC 3339 with microseconds: the Lease's MicroTime format. */
function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export class LeaderElector {
  #o: Required<Omit<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading">> &
    Pick<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading">;
  #log: Logger;
  #leading = false;
  #stopped = false;
  #observed: { holder: string; renewTime: string; resourceVersion: string } | undefined;
  #observedAt = 0;
  #lastRenew = 0;
  #timer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;

  constructor(options: LeaderElectionOptions) {
    this.#o = {
      ...options,
      leaseDurationMs: options.leaseDurationMs ?? 15_000,
      renewDeadlineMs: options.renewDeadlineMs ?? 10_000,
      retryPeriodMs: options.retryPeriodMs ?? 2_000,
    };
    this.#log = options.logger.child({ lease: `${options.namespace}/${options.name}`, identity: options.identity });
    leaderStatus.set({ name: options.name }, 0);
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const ok = await this.#tryAcquireOrRenew();
      const now = Date.now();
      if (ok) {
        this.#lastRenew = now;
        if (!this.#leading) {
          this.#leading = true;
          leaderStatus.set({ name: this.#o.name }, 1);
          this.#log.info(`Acquired Lease ${this.#o.namespace}/${this.#o.name}`);
          this.#o.onStartedLeading();
        }
      } else if (this.#leading && now - this.#lastRenew >= this.#o.renewDeadlineMs) {
        this.#leading = false;
        leaderStatus.set({ name: this.#o.name }, 0);
        this.#log.error(`Lost Lease ${this.#o.namespace}/${this.#o.name}: no renewal within the renew deadline`);
        this.#stopped = true;
        this.#o.onStoppedLeading();
        return;
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        this.#timer = setTimeout(resolve, this.#o.retryPeriodMs * (this.#leading ? 1 : 1 + Math.random() * 0.2));
      });
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { client, namespace, name, identity } = this.#o;
    const now = new Date();
    const leaseSeconds = Math.round(this.#o.leaseDurationMs / 1000);
    try {
      const lease = await client.getOrUndefined<Lease>(LEASES, namespace, name);
      if (!lease) {
        await client.create<Lease>(LEASES, {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: leaseSeconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        });
        return true;
      }
      const holder = lease.spec.holderIdentity ?? "";
      const renewTime = lease.spec.renewTime ?? "";
      const rv = lease.metadata.resourceVersion ?? "";
      if (!this.#observed || this.#observed.holder !== holder || this.#observed.renewTime !== renewTime) {
        this.#observed = { holder, renewTime, resourceVersion: rv };
        this.#observedAt = now.getTime();
      }
      const duration = (lease.spec.leaseDurationSeconds ?? leaseSeconds) * 1000;
      const held = holder !== "" && holder !== identity && this.#observedAt + duration > now.getTime();
      if (held) return false;
      const transition = holder !== identity;
      lease.spec = {
        holderIdentity: identity,
        leaseDurationSeconds: leaseSeconds,
        acquireTime: transition ? microTime(now) : (lease.spec.acquireTime ?? microTime(now)),
        renewTime: microTime(now),
        leaseTransitions: (lease.spec.leaseTransitions ?? 0) + (transition && holder !== "" ? 1 : 0),
      };
      await client.update(LEASES, lease);
      return true;
    } catch (err) {
      if (isConflict(err) || isAlreadyExists(err)) return false;
      this.#log.warn({ error: describeError(err) }, `Could not acquire or renew Lease ${namespace}/${name}`);
      return false;
    }
  }

  /** Stops campaigning; a leader releases the Lease so a successor can take it at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#wake?.();
    await this.#loop;
    if (!this.#leading) return;
    this.#leading = false;
    leaderStatus.set({ name: this.#o.name }, 0);
    try {
      const lease = await this.#o.client.get<Lease>(LEASES, this.#o.namespace, this.#o.name);
      if (lease.spec.holderIdentity !== this.#o.identity) return;
      lease.spec = { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime(new Date()) };
      await this.#o.client.update(LEASES, lease);
      this.#log.info(`Released Lease ${this.#o.namespace}/${this.#o.name}`);
    } catch (err) {
      if (!isNotFound(err)) this.#log.warn({ error: describeError(err) }, "Could not release the Lease");
    }
  }
}
