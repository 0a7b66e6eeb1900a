// Leader election on a coordination.k8s.io/v1 Lease, as client-go's
// leaderelection does it, with controller-runtime's timings (lease 15 s, renew
// deadline 10 s, retry 2 s):
// - a candidate takes the Lease when it is free or its holder has not renewed
//   for leaseDuration, measured on the candidate's own monotonic clock from
//   when it last saw the record change (no clock-skew trust);
// - every write is an update with the read resourceVersion, so two candidates
//   cannot both win the same round (409 for the loser), and a deposed
//   leader's late write cannot land after a successor's;
// - every attempt (GET, then create or PUT) carries an AbortSignal that fires
//   at the renew deadline: renewDeadline after the start of the last
//   successful attempt (monotonic clock), or after its own start while not
//   leading. A timer of its own ends leadership at that deadline even while a
//   request hangs (onStoppedLeading — the operator aborts its work and exits,
//   like controller-runtime). The apiserver wrote our renewTime after that
//   start, and others count leaseDuration from when they saw it, so we stop
//   at least leaseDuration - renewDeadline before anyone else may take over;
// - once leadership is lost the elector never writes again;
// - on graceful shutdown it releases the Lease (empty holder), within what is
//   left before its renew deadline, so a successor does not wait out the lease.
// A Lease is not fencing: the operator's writes also carry resourceVersion
// preconditions, so a deposed leader cannot clobber newer state.
import { performance } from "node:perf_hooks";
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
  /** Called synchronously at the renew deadline (or when another holder is seen): stop all work now. */
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

type Attempt = "ok" | "held" | "failed";

export class LeaderElector {
  #o: Required<Omit<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading">> &
    Pick<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading">;
  #log: Logger;
  #leading = false;
  /** stop() was called or leadership was lost: no more attempts. */
  #stopped = false;
  #lost = false;
  #observed: { holder: string; renewTime: string } | undefined;
  /** performance.now() when #observed last changed. */
  #observedAt = 0;
  /** While leading: performance.now() at which leadership ends unless renewed. */
  #deadlineAt = 0;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #attempt: AbortController | undefined;
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
    if (this.#o.renewDeadlineMs >= this.#o.leaseDurationMs) {
      throw new Error("The renew deadline must be shorter than the lease duration");
    }
    this.#log = options.logger.child({ lease: `${options.namespace}/${options.name}`, identity: options.identity });
    leaderStatus.set({ name: options.name }, 0);
  }

  /** Whether this process leads now: false from the renew deadline on, even before the timer ran. */
  get isLeader(): boolean {
    return this.#leading && performance.now() < this.#deadlineAt;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const startedAt = performance.now();
      // The attempt may not outlive the renew deadline.
      const limitMs = this.#leading ? this.#deadlineAt - startedAt : this.#o.renewDeadlineMs;
      const ac = new AbortController();
      this.#attempt = ac;
      const timer = setTimeout(() => ac.abort(new Error("Renew deadline reached")), Math.max(0, limitMs));
      let outcome: Attempt;
      try {
        outcome = await this.#tryAcquireOrRenew(ac.signal);
      } finally {
        clearTimeout(timer);
        this.#attempt = undefined;
      }
      if (this.#stopped) return;
      if (outcome === "ok" && performance.now() < startedAt + limitMs) this.#renewed(startedAt);
      else if (this.#leading && (outcome === "held" || performance.now() >= this.#deadlineAt)) {
        this.#lose(outcome === "held" ? "another holder renewed it" : "no renewal within the renew deadline");
        return;
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        this.#timer = setTimeout(resolve, this.#o.retryPeriodMs * (this.#leading ? 1 : 1 + Math.random() * 0.2));
      });
    }
  }

  /** A successful attempt that started at `startedAt`: lead until startedAt + renewDeadline. */
  #renewed(startedAt: number): void {
    this.#deadlineAt = startedAt + this.#o.renewDeadlineMs;
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = setTimeout(
      () => this.#lose("no renewal within the renew deadline"),
      this.#deadlineAt - performance.now(),
    );
    if (this.#leading) return;
    this.#leading = true;
    leaderStatus.set({ name: this.#o.name }, 1);
    this.#log.info(`Acquired Lease ${this.#o.namespace}/${this.#o.name}`);
    this.#o.onStartedLeading();
  }

  /** Ends leadership for good, synchronously: no attempt runs or starts after this. */
  #lose(why: string): void {
    if (!this.#leading) return;
    this.#lost = true;
    this.#halt("Leadership lost");
    leaderStatus.set({ name: this.#o.name }, 0);
    this.#log.error(`Lost Lease ${this.#o.namespace}/${this.#o.name}: ${why}`);
    this.#o.onStoppedLeading();
  }

  /** No attempt runs or starts after this: the current one aborts, the loop wakes and ends. */
  #halt(why: string): void {
    this.#stopped = true;
    this.#leading = false;
    clearTimeout(this.#deadlineTimer);
    clearTimeout(this.#timer);
    this.#attempt?.abort(new Error(why));
    this.#wake?.();
  }

  async #tryAcquireOrRenew(signal: AbortSignal): Promise<Attempt> {
    const { client, namespace, name, identity } = this.#o;
    const leaseSeconds = Math.round(this.#o.leaseDurationMs / 1000);
    try {
      const lease = await client.getOrUndefined<Lease>(LEASES, namespace, name, { signal });
      // Between the read and the write: an abort or a loss means no write.
      if (signal.aborted || this.#stopped) return "failed";
      const now = new Date();
      if (!lease) {
        const spec = { holderIdentity: identity, leaseDurationSeconds: leaseSeconds, leaseTransitions: 0 };
        await client.create<Lease>(
          LEASES,
          {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name, namespace },
            spec: { ...spec, acquireTime: microTime(now), renewTime: microTime(now) },
          },
          { signal },
        );
        return "ok";
      }
      const holder = lease.spec.holderIdentity ?? "";
      const renewTime = lease.spec.renewTime ?? "";
      if (!this.#observed || this.#observed.holder !== holder || this.#observed.renewTime !== renewTime) {
        this.#observed = { holder, renewTime };
        this.#observedAt = performance.now();
      }
      const duration = (lease.spec.leaseDurationSeconds ?? leaseSeconds) * 1000;
      const held = holder !== "" && holder !== identity && this.#observedAt + duration > performance.now();
      if (held) return "held";
      const transition = holder !== identity;
      lease.spec = {
        holderIdentity: identity,
        leaseDurationSeconds: leaseSeconds,
        acquireTime: transition ? microTime(now) : (lease.spec.acquireTime ?? microTime(now)),
        renewTime: microTime(now),
        leaseTransitions: (lease.spec.leaseTransitions ?? 0) + (transition && holder !== "" ? 1 : 0),
      };
      await client.update(LEASES, lease, undefined, { signal });
      return "ok";
    } catch (err) {
      if (isConflict(err) || isAlreadyExists(err)) return "failed";
      const level = this.#stopped ? "debug" : "warn"; // stopping aborts the attempt on purpose
      this.#log[level]({ error: describeError(err) }, `Could not acquire or renew Lease ${namespace}/${name}`);
      return "failed";
    }
  }

  /**
   * Stops campaigning; a leader releases the Lease so a successor can take it
   * at once — only before its renew deadline, so a release never lands late.
   */
  async stop(): Promise<void> {
    const leading = this.isLeader;
    this.#halt("Stopping");
    await this.#loop;
    if (!leading || this.#lost) return;
    leaderStatus.set({ name: this.#o.name }, 0);
    const remainingMs = Math.floor(this.#deadlineAt - performance.now());
    if (remainingMs < 1) return;
    const signal = AbortSignal.timeout(remainingMs);
    const { client, namespace, name, identity } = this.#o;
    try {
      const lease = await client.get<Lease>(LEASES, namespace, name, { signal });
      if (lease.spec.holderIdentity !== identity) return;
      lease.spec = { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, renewTime: microTime(new Date()) };
      await client.update(LEASES, lease, undefined, { signal });
      this.#log.info(`Released Lease ${namespace}/${name}`);
    } catch (err) {
      if (!isNotFound(err))
        this.#log.warn({ error: describeError(err) }, `Could not release Lease ${namespace}/${name}`);
    }
  }
}
