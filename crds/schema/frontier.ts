// spec.frontier: where a CrawlJob's crawl state lives. `redis`: one queue,
// seen-set and page accounting shared by every runner pod of the job (and
// per-host politeness across them), so a one-host site scales across pods.
// The Redis URL comes from a Secret the kubelet reads into the runner's env:
// it never passes through the operator, the CrawlJob or a log.
import Type from "typebox";
import { Name } from "./common.ts";

export const DEFAULT_REDIS_URL_KEY = "url";
export const DEFAULT_LEASE_SECONDS = 60;
/** The runner's env (operator/crawljob/runner-pod.ts sets it): the URL from the Secret, the job's key, the lease. */
export const FRONTIER_REDIS_URL_ENV = "FEEDCRAWL_FRONTIER_REDIS_URL";
export const FRONTIER_JOB_ENV = "FEEDCRAWL_FRONTIER_JOB";
export const FRONTIER_LEASE_ENV = "FEEDCRAWL_FRONTIER_LEASE_SECONDS";

export const RedisFrontierSpec = Type.Object(
  {
    urlSecretRef: Type.Object(
      {
        name: Name({ description: "Secret in the CrawlJob's namespace holding the Redis URL." }),
        key: Type.Optional(
          Type.String({
            minLength: 1,
            maxLength: 253,
            description: `The key holding redis://[user:password@]host:port/db or rediss://… (default "${DEFAULT_REDIS_URL_KEY}").`,
          }),
        ),
      },
      { additionalProperties: false },
    ),
    leaseSeconds: Type.Optional(
      Type.Integer({
        minimum: 5,
        maximum: 3600,
        description: `How long a dead runner's pages stay leased before another runner takes them (default ${DEFAULT_LEASE_SECONDS}).`,
      }),
    ),
  },
  { additionalProperties: false },
);
export type RedisFrontierSpec = Type.Static<typeof RedisFrontierSpec>;

export const FrontierSpec = Type.Object(
  {
    redis: Type.Optional(RedisFrontierSpec),
  },
  {
    additionalProperties: false,
    description: "Where the crawl state lives. Absent: in each runner pod (its shard's hosts only).",
  },
);
export type FrontierSpec = Type.Static<typeof FrontierSpec>;
