// A CrawlSchedule's cron expression (croner, 5-field mode, time zone aware) and
// which run is due now, by CronJob's rules (kube-controller-manager's
// cronjob utils, mostRecentScheduleTime + nextScheduleTime):
// - only the most recent missed time runs, however many were missed (an
//   operator down for a day starts one hourly run, not 24);
// - more than 100 missed times is reported (TooManyMissedTimes) but still runs;
// - with startingDeadlineSeconds, times older than now - deadline are not
//   considered at all, and a due run past its deadline is skipped (MissSchedule).
import { Cron } from "croner";

/** CronJob warns above this many missed start times (clock skew, a long outage). */
export const TOO_MANY_MISSED = 100;

export class ScheduleError extends Error {
  override name = "ScheduleError";
}

export interface Schedule {
  /** The first scheduled time strictly after `after`. */
  next(after: Date): Date | undefined;
  /** The latest scheduled time at or before `at`. */
  latest(at: Date): Date | undefined;
}

/** Parses spec.schedule in spec.timeZone (default UTC); throws a ScheduleError saying what is wrong. */
export function parseSchedule(expression: string, timeZone = "UTC"): Schedule {
  if (/\b(CRON_)?TZ=/.test(expression)) {
    throw new ScheduleError("set the time zone in spec.timeZone, not as CRON_TZ= or TZ= in the schedule");
  }
  let cron: Cron;
  try {
    cron = new Cron(expression.trim(), { mode: "5-part", timezone: timeZone, paused: true });
  } catch (err) {
    throw new ScheduleError(`invalid schedule '${expression}': ${(err as Error).message}`);
  }
  const next = (after: Date) => cron.nextRun(after) ?? undefined;
  try {
    // Also what rejects an unknown time zone, and a date that never comes (`0 0 31 2 *`).
    if (!next(new Date())) throw new ScheduleError(`schedule '${expression}' never fires`);
  } catch (err) {
    if (err instanceof ScheduleError) throw err;
    throw new ScheduleError(`invalid time zone '${timeZone}': ${(err as Error).message.split(". ")[0]}`);
  }
  return {
    next,
    latest(at) {
      // previousRuns is strictly before a whole-second reference: step forward once for a run exactly at `at`.
      const before = cron.previousRuns(1, at)[0];
      const after = before ? next(before) : undefined;
      return after && after.getTime() <= at.getTime() ? after : before;
    },
  };
}

export interface DueRun {
  /** The run to start now, when one is due. */
  scheduled?: Date;
  /** Scheduled times between the last run (or creation) and now, counted up to TOO_MANY_MISSED + 1. */
  missed: number;
  /** The due run is older than startingDeadlineSeconds: skip it. */
  tooLate: boolean;
  /** The next scheduled time after now (when to look again). */
  next?: Date;
}

/** Which run (if any) is due at `now`, CronJob's way. */
export function dueRun(
  schedule: Schedule,
  o: { lastScheduleTime?: Date; created: Date; now: Date; startingDeadlineSeconds?: number },
): DueRun {
  const { now } = o;
  const since = o.lastScheduleTime ?? o.created;
  const next = schedule.next(now);
  const scheduled = schedule.latest(now);
  if (!scheduled || scheduled <= since) return { missed: 0, tooLate: false, ...(next ? { next } : {}) };
  const deadlineMs = o.startingDeadlineSeconds === undefined ? undefined : o.startingDeadlineSeconds * 1000;
  // Missed times are counted within the deadline window only (what "decrease startingDeadlineSeconds" fixes).
  const windowStart =
    deadlineMs === undefined ? since : new Date(Math.max(since.getTime(), now.getTime() - deadlineMs));
  let missed = 0;
  for (let t = schedule.next(windowStart); t && t <= now && missed <= TOO_MANY_MISSED; t = schedule.next(t)) missed++;
  const tooLate = deadlineMs !== undefined && scheduled.getTime() + deadlineMs < now.getTime();
  return { scheduled, missed, tooLate, ...(next ? { next } : {}) };
}
