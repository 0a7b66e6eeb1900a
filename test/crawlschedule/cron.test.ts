// The schedule parser and CronJob's missed-run rules, on an injected clock.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dueRun, parseSchedule, ScheduleError, TOO_MANY_MISSED } from "../../operator/crawlschedule/cron.ts";

const at = (iso: string) => new Date(iso);

describe("parseSchedule", () => {
  it("takes 5 fields and the @daily-style macros, in a time zone", () => {
    const daily = parseSchedule("@daily", "Europe/Berlin");
    assert.equal(daily.next(at("2026-06-01T12:00:00Z"))?.toISOString(), "2026-06-01T22:00:00.000Z");
    const hourly = parseSchedule("@hourly");
    assert.equal(hourly.next(at("2026-06-01T12:00:00Z"))?.toISOString(), "2026-06-01T13:00:00.000Z");
    const weekdays = parseSchedule("30 6 * * 1-5");
    // 2026-06-06 is a Saturday: the next weekday run is Monday the 8th.
    assert.equal(weekdays.next(at("2026-06-05T07:00:00Z"))?.toISOString(), "2026-06-08T06:30:00.000Z");
  });

  it("ORs day-of-month and day-of-week as cron (and CronJob) do", () => {
    const s = parseSchedule("0 0 1 * MON");
    // 2026-06-01 is a Monday; the next match is Monday the 8th, not the 1st of July.
    assert.equal(s.next(at("2026-06-01T00:00:00Z"))?.toISOString(), "2026-06-08T00:00:00.000Z");
  });

  it("refuses seconds, TZ= prefixes, unknown time zones and dates that never come", () => {
    for (const [expr, tz] of [
      ["0 0 * * * *", undefined],
      ["TZ=UTC 0 0 * * *", undefined],
      ["0 0 * * *", "Mars/Olympus"],
      ["0 0 31 2 *", undefined],
      ["every day", undefined],
    ] as const) {
      assert.throws(() => parseSchedule(expr, tz), ScheduleError, `${expr} ${tz ?? ""}`);
    }
  });

  it("latest() includes a run exactly at the given time", () => {
    const s = parseSchedule("*/5 * * * *");
    assert.equal(s.latest(at("2026-06-01T12:05:00Z"))?.toISOString(), "2026-06-01T12:05:00.000Z");
    assert.equal(s.latest(at("2026-06-01T12:09:59.900Z"))?.toISOString(), "2026-06-01T12:05:00.000Z");
  });
});

describe("dueRun: CronJob's missed-run rules", () => {
  const everyMinute = parseSchedule("* * * * *");
  const created = at("2026-06-01T12:00:30Z");

  it("nothing is due before the first scheduled time; next says when", () => {
    const due = dueRun(everyMinute, { created, now: at("2026-06-01T12:00:50Z") });
    assert.equal(due.scheduled, undefined);
    assert.equal(due.next?.toISOString(), "2026-06-01T12:01:00.000Z");
  });

  it("a run is due at its time, and not again once it is the last schedule time", () => {
    const now = at("2026-06-01T12:01:02Z");
    const due = dueRun(everyMinute, { created, now });
    assert.equal(due.scheduled?.toISOString(), "2026-06-01T12:01:00.000Z");
    assert.equal(due.missed, 1);
    assert.equal(due.tooLate, false);
    const again = dueRun(everyMinute, { created, now, lastScheduleTime: due.scheduled! });
    assert.equal(again.scheduled, undefined);
  });

  it("after an outage only the most recent missed time runs", () => {
    const last = at("2026-06-01T12:01:00Z");
    // The operator was down from 12:01:30 to 12:04:20: 12:02, 12:03 and 12:04 were missed.
    const due = dueRun(everyMinute, { created, lastScheduleTime: last, now: at("2026-06-01T12:04:20Z") });
    assert.equal(due.scheduled?.toISOString(), "2026-06-01T12:04:00.000Z");
    assert.equal(due.missed, 3);
  });

  it("startingDeadlineSeconds: a due run older than the deadline is skipped", () => {
    const fiveMinutes = parseSchedule("*/5 * * * *");
    const last = at("2026-06-01T12:00:00Z");
    // Down for 3 minutes over 12:05: back at 12:07:00, the 12:05 run is 120 s late.
    const late = dueRun(fiveMinutes, {
      created,
      lastScheduleTime: last,
      now: at("2026-06-01T12:07:00Z"),
      startingDeadlineSeconds: 60,
    });
    assert.equal(late.scheduled?.toISOString(), "2026-06-01T12:05:00.000Z");
    assert.equal(late.tooLate, true);
    const inTime = dueRun(fiveMinutes, {
      created,
      lastScheduleTime: last,
      now: at("2026-06-01T12:07:00Z"),
      startingDeadlineSeconds: 300,
    });
    assert.equal(inTime.tooLate, false);
    // Without a deadline a late run still starts.
    const noDeadline = dueRun(fiveMinutes, { created, lastScheduleTime: last, now: at("2026-06-01T12:07:00Z") });
    assert.equal(noDeadline.tooLate, false);
  });

  it("too many missed times are reported but one run still starts; a deadline bounds the count", () => {
    const last = at("2026-06-01T12:00:00Z");
    const now = at("2026-06-01T16:00:30Z"); // 240 minutes later
    const due = dueRun(everyMinute, { created, lastScheduleTime: last, now });
    assert.ok(due.missed > TOO_MANY_MISSED);
    assert.equal(due.scheduled?.toISOString(), "2026-06-01T16:00:00.000Z");
    assert.equal(due.tooLate, false);
    const bounded = dueRun(everyMinute, { created, lastScheduleTime: last, now, startingDeadlineSeconds: 600 });
    assert.equal(bounded.missed, 10);
    assert.equal(bounded.scheduled?.toISOString(), "2026-06-01T16:00:00.000Z");
  });

  it("follows the time zone across a DST change", () => {
    const s = parseSchedule("30 2 * * *", "Europe/Berlin");
    // 2026-03-29: 02:30 does not exist in Berlin (clocks jump 02:00 → 03:00).
    const next = s.next(at("2026-03-28T12:00:00Z"));
    assert.ok(next && next > at("2026-03-28T12:00:00Z"));
    const after = s.next(at("2026-03-30T00:00:00Z"));
    assert.equal(after?.toISOString(), "2026-03-30T00:30:00.000Z"); // 02:30 CEST
  });
});
