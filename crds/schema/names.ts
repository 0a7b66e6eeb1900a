// Names and defaults the CRDs share with the code around them: labels,
// annotations, env names, defaults, enum values. No TypeBox here: the
// operator imports these without loading the schema builder (~15 MB RSS),
// since the API server already enforced the schema. Everything imports them
// from here, the schema files too.

// CrawlFeed (crawlfeed.ts)
/** Labels every CrawlFeed carries (the runner sets them; the operator selects by them). */
export const CRAWLJOB_LABEL = "feedcrawl.io/crawljob";
export const SHARD_LABEL = "feedcrawl.io/shard";
/** Annotating a CrawlFeed with this (any value) resends its webhook. */
export const REDELIVER_ANNOTATION = "feedcrawl.io/redeliver";

// CrawlJob (crawljob.ts)
/** The message of the CRD's "feeds required" CEL rule, and of the operator's check of it. */
export const FEEDS_REQUIRED_MESSAGE =
  "at least one feed is required: the runner stores what it crawls only through spec.feeds";

// CrawlSchedule (crawlschedule.ts)
/** The label every CrawlJob a schedule created carries: the schedule's name. */
export const CRAWLSCHEDULE_LABEL = "feedcrawl.io/crawlschedule";
/** On a created CrawlJob: the run's scheduled time (RFC 3339); the runner's %(time)s. */
export const SCHEDULED_TIME_ANNOTATION = "feedcrawl.io/scheduled-time";
/** On a CrawlSchedule: a new value (any string, e.g. a date) starts one run now. */
export const RUN_NOW_ANNOTATION = "feedcrawl.io/run-now";
/** On a CrawlJob that concurrencyPolicy Replace stopped (spec.stop): the CrawlJob that replaced it. */
export const REPLACED_BY_ANNOTATION = "feedcrawl.io/replaced-by";

// spec.feeds (feeds.ts)
export const FEED_FORMATS = ["jsonlines", "jsonl", "jl", "json", "csv", "xml"] as const;
export type FeedFormat = (typeof FEED_FORMATS)[number];
export const POSTPROCESSORS = ["gzip", "brotli", "zstd"] as const;
export type Postprocessor = (typeof POSTPROCESSORS)[number];

// spec.frontier (frontier.ts)
export const DEFAULT_REDIS_URL_KEY = "url";
export const DEFAULT_LEASE_SECONDS = 60;
/** The runner's env (operator/crawljob/runner-pod.ts sets it): the URL from the Secret, the job's key, the lease. */
export const FRONTIER_REDIS_URL_ENV = "FEEDCRAWL_FRONTIER_REDIS_URL";
export const FRONTIER_JOB_ENV = "FEEDCRAWL_FRONTIER_JOB";
export const FRONTIER_LEASE_ENV = "FEEDCRAWL_FRONTIER_LEASE_SECONDS";

// spec.runner (runner.ts)
/** The pod's termination grace period when spec.runner sets none (docs/deploy.md: sizing it). */
export const DEFAULT_TERMINATION_GRACE_SECONDS = 120;
/** The /tmp emptyDir's sizeLimit when spec.runner sets none; half of it is the feed spool's budget. */
export const DEFAULT_TMP_SIZE_LIMIT = "2Gi";
/** Env names the operator sets itself: a user's env must not shadow them. */
export const RESERVED_ENV_PREFIX = "FEEDCRAWL_";
export const RESERVED_ENV_NAMES = ["JOB_COMPLETION_INDEX"] as const;

// spec.spider (spider.ts)
/** The runner pod's env variables the operator fills from settings.proxy.credentialsSecretRef's Secret. */
export const PROXY_USERNAME_ENV = "FEEDCRAWL_PROXY_USERNAME";
export const PROXY_PASSWORD_ENV = "FEEDCRAWL_PROXY_PASSWORD";
/** …or, for a `key` holding `user:password`, this one. */
export const PROXY_CREDENTIALS_ENV = "FEEDCRAWL_PROXY_CREDENTIALS";
/** Where the runner pod mounts spider.moduleConfigMapRef's key (read-only): `${dir}/${key}`. */
export const SPIDER_MODULE_MOUNT_PATH = "/etc/feedcrawl-module";
