// spec.frontier: where a CrawlJob's crawl state lives. `redis`: one queue,
// seen-set and page accounting shared by every runner pod of the job (and
// per-host politeness across them), so a one-host site scales across pods.
// The Redis URL comes from a Secret the kubelet reads into the runner's env:
// it never passes through the operator, the CrawlJob or a log.
import Type from "typebox";
import { Name } from "./builders.ts";
import { DEFAULT_LEASE_SECONDS, DEFAULT_REDIS_URL_KEY } from "./names.ts";

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
