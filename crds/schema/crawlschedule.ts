// The CrawlSchedule (feedcrawl.io/v1alpha1): a CrawlJob template run on a cron
// schedule, modelled on batch/v1 CronJob. The template's spec is the CrawlJob
// schema itself, so the API server validates it (CEL rules included) when the
// schedule is applied, not only when a run is created.
import Type from "typebox";
import { StringEnum } from "./builders.ts";
import { type CustomObject, cel } from "./common.ts";
import { Condition, CrawlJobSpec } from "./crawljob.ts";

/** Scheduled runs are named <schedule>-<minutes since the epoch>, run-now ones <schedule>-now-<8 hex>: ≤ 56. */
export const MAX_SCHEDULE_NAME = 42;

const StringMap = (description: string) =>
  Type.Record(Type.String({ minLength: 1, maxLength: 317 }), Type.String({ maxLength: 4096 }), {
    maxProperties: 64,
    description,
  });

export const CrawlJobTemplate = Type.Object(
  {
    metadata: Type.Optional(
      Type.Object(
        {
          labels: Type.Optional(StringMap("Labels of every CrawlJob created (plus feedcrawl.io/crawlschedule).")),
          annotations: Type.Optional(
            StringMap("Annotations of every CrawlJob created (plus feedcrawl.io/scheduled-time)."),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    spec: CrawlJobSpec,
  },
  { additionalProperties: false },
);
export type CrawlJobTemplate = Type.Static<typeof CrawlJobTemplate>;

export const CONCURRENCY_POLICIES = ["Allow", "Forbid", "Replace"] as const;
export type ConcurrencyPolicy = (typeof CONCURRENCY_POLICIES)[number];

export const CrawlScheduleSpec = Type.Object(
  {
    schedule: Type.String({
      minLength: 1,
      maxLength: 128,
      description:
        "Cron schedule: 5 fields (minute hour day-of-month month day-of-week) or @yearly, @monthly, @weekly, @daily, @hourly.",
      ...cel({
        rule: "!self.contains('TZ=')",
        message: "set the time zone in spec.timeZone, not as CRON_TZ= or TZ= in the schedule",
      }),
    }),
    timeZone: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description: "IANA time zone of the schedule (e.g. Europe/Berlin); default: UTC.",
      }),
    ),
    concurrencyPolicy: Type.Optional(
      StringEnum(CONCURRENCY_POLICIES, {
        default: "Allow",
        description:
          "Allow: runs may overlap; Forbid: skip a run while one is active; Replace: suspend the active run (its stored feeds are still delivered) and start the new one.",
      }),
    ),
    suspend: Type.Optional(Type.Boolean({ default: false, description: "true: start no new runs." })),
    startingDeadlineSeconds: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: "A run that could not start within this many seconds of its scheduled time is skipped.",
      }),
    ),
    successfulJobsHistoryLimit: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 100, default: 3, description: "Succeeded CrawlJobs to keep." }),
    ),
    failedJobsHistoryLimit: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 100, default: 1, description: "Failed (or replaced) CrawlJobs to keep." }),
    ),
    crawlJobTemplate: CrawlJobTemplate,
  },
  { additionalProperties: false },
);
export type CrawlScheduleSpec = Type.Static<typeof CrawlScheduleSpec>;

/** A reference to one CrawlJob the schedule created (core/v1 ObjectReference's fields that matter). */
export const JobReference = Type.Object({
  apiVersion: Type.Optional(Type.String({ maxLength: 64 })),
  kind: Type.Optional(Type.String({ maxLength: 64 })),
  namespace: Type.Optional(Type.String({ maxLength: 63 })),
  name: Type.String({ maxLength: 253 }),
  uid: Type.Optional(Type.String({ maxLength: 64 })),
});
export type JobReference = Type.Static<typeof JobReference>;

export const CrawlScheduleStatus = Type.Object({
  active: Type.Optional(
    Type.Array(JobReference, { maxItems: 100, description: "The CrawlJobs of this schedule still running." }),
  ),
  activeCount: Type.Optional(Type.Integer({ minimum: 0, description: "How many CrawlJobs are active (ACTIVE)." })),
  lastScheduleTime: Type.Optional(
    Type.String({ format: "date-time", description: "The scheduled time of the last run started." }),
  ),
  lastSuccessfulTime: Type.Optional(
    Type.String({ format: "date-time", description: "When the last run that succeeded completed." }),
  ),
  lastRunNow: Type.Optional(
    Type.String({ maxLength: 1024, description: "The feedcrawl.io/run-now value last acted on." }),
  ),
  conditions: Type.Optional(
    Type.Array(Condition, {
      maxItems: 8,
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["type"],
    }),
  ),
});
export type CrawlScheduleStatus = Type.Static<typeof CrawlScheduleStatus>;

export type CrawlSchedule = CustomObject<"CrawlSchedule", CrawlScheduleSpec, CrawlScheduleStatus>;
