// Which feeds a crawl with a state can keep exactly-once: it must be able to
// take back a file it stored but never reported, and a resumed run must never
// write under an earlier run's name.
import type { Feeds } from "../../crds/schema/feeds.ts";
import { parseFeedLocation } from "../../spec/feed-location.ts";
import { parseUriTemplate } from "../../spec/uri-template.ts";

/** The feeds that cannot be resumed, each with why (empty: all can). */
export function unresumableFeeds(feeds: Feeds): { path: string; message: string }[] {
  return Object.keys(feeds).flatMap((template) => {
    const path = `feeds[${JSON.stringify(template)}]`;
    if (parseFeedLocation(template).kind === "stdout")
      return [{ path, message: "stdout cannot be resumed: write to a file or S3 with a state (--jobdir)" }];
    const params = parseUriTemplate(template).params;
    if (params.has("batch_id") || params.has("batch_time") || params.has("time")) return [];
    return [{ path, message: "with a state (--jobdir), the URI needs %(batch_id)s, %(batch_time)s or %(time)s" }];
  });
}
