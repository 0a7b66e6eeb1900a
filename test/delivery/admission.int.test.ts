// Finding 5 of issue 14 on the real API server: CrawlFeeds are trusted only
// from their own runner. The ValidatingAdmissionPolicy of crds/ is applied,
// and requests are made as the runner's ServiceAccount by impersonation
// (kubectl --as=system:serviceaccount:<ns>:<job>-runner, with the per-job
// Role the operator grants, operator/crawljob/children.ts): a runner can
// create its own job's CrawlFeeds and none of another job's, and the API
// server says why. A CrawlFeed forged past the API (by an admin, who is not
// matched) with a URI the job's feeds do not name is marked Failed with an
// Event by the delivery, and the backend never sees it.
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import type { KubeConfig } from "@kubernetes/client-node";
import { parse } from "yaml";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import type { CrawlJob } from "../../crds/schema/crawljob.ts";
import { runnerRole, runnerRoleBinding } from "../../operator/crawljob/children.ts";
import { createFeedDeliveryReconciler, type FeedDeliveryReconciler } from "../../operator/delivery/index.ts";
import { crawlFeedObject } from "../../runner/report/crawlfeeds.ts";
import { find, render } from "../chart/helm.ts";
import { adminKubeConfig } from "../platform/env.ts";
import { createNamespace, type Disposable, eventually, kubectl } from "../platform/fixtures.ts";
import {
  createCrawlJob,
  createFeedAsRunner,
  createSecret,
  driveFeed,
  eventsFor,
  feedEvent,
  installCrds,
  newSigningSecret,
} from "./kube-helpers.ts";
import { type Receiver, startReceiver } from "./receiver.ts";

const POLICY_FILE = resolve(import.meta.dirname, "..", "..", "crds", "feedcrawl.io_crawlfeed-policy.yaml");
const POLICY = "crawlfeeds.feedcrawl.io";

describe("CrawlFeeds are trusted only from their own runner (issue 14, finding 5)", () => {
  let kc: KubeConfig;
  let ns: Disposable;
  let receiver: Receiver;
  let reconciler: FeedDeliveryReconciler;
  let mine: CrawlJob;
  let theirs: CrawlJob;
  const secret = newSigningSecret();
  const asRunner = () => `--as=system:serviceaccount:${ns.name}:${mine.metadata.name}-runner`;

  /** Creates `feed` as `mine`'s runner (impersonated); resolves with kubectl's error text, or "created". */
  async function createAsRunner(feed: CrawlFeed, dryRun = false): Promise<string> {
    const args = ["create", "-n", ns.name, asRunner(), "-o", "name", "-f", "-"];
    try {
      await kubectl(dryRun ? [...args, "--dry-run=server"] : args, { input: JSON.stringify(feed) });
      return "created";
    } catch (err) {
      return (err as Error).message;
    }
  }

  const identity = (job: CrawlJob) => ({
    name: job.metadata.name!,
    namespace: job.metadata.namespace!,
    uid: job.metadata.uid!,
  });
  const feedFor = (job: CrawlJob, n: number) =>
    crawlFeedObject(identity(job), 0, feedEvent(`s3://crawl-data/books/part-0000${n}.jsonl`));

  before(async () => {
    kc = adminKubeConfig();
    await installCrds();
    await kubectl([
      "apply",
      "--server-side",
      "--force-conflicts",
      "--field-manager=feedcrawl-tests",
      "-f",
      POLICY_FILE,
    ]);
    ns = await createNamespace("admission");
    await createSecret(kc, ns.name, "ingest-webhook", { secret });
    receiver = await startReceiver(secret);
    reconciler = createFeedDeliveryReconciler({
      kc,
      logger: (await import("pino")).pino({ level: "silent" }),
      webhookPrivateNetworks: ["127.0.0.0/8"],
    });
    mine = await createCrawlJob(kc, ns.name, "books", { url: receiver.url });
    theirs = await createCrawlJob(kc, ns.name, "other", { url: receiver.url });
    // The Role the operator grants `books`' runner, and its binding to the ServiceAccount.
    await kubectl(["apply", "-n", ns.name, "-f", "-"], {
      input: JSON.stringify({ apiVersion: "v1", kind: "List", items: [runnerRole(mine), runnerRoleBinding(mine)] }),
    });
    // The policy is in force once the API server refuses a foreign CrawlFeed (a server-side dry run creates nothing).
    await eventually(
      "the ValidatingAdmissionPolicy to be in force",
      async () => (await createAsRunner(feedFor(theirs, 9), true)).includes(POLICY),
      60_000,
    );
  });

  after(async () => {
    await reconciler?.close();
    await receiver?.close();
    await ns?.cleanup();
  });

  it("a runner creates its own job's CrawlFeed", async () => {
    assert.equal(await createAsRunner(feedFor(mine, 1)), "created");
  });

  it("a runner cannot create a CrawlFeed labelled and owned by another job: the API server says why", async () => {
    const message = await createAsRunner(feedFor(theirs, 2));
    assert.match(message, new RegExp(`ValidatingAdmissionPolicy '${POLICY}'`));
    assert.match(message, /may create only CrawlFeeds of its own CrawlJob books: label feedcrawl\.io\/crawljob/);
  });

  it("nor one labelled for its job but owned by another, or owned by a uid that is not its job's", async () => {
    const foreignOwner = feedFor(mine, 3);
    foreignOwner.metadata.ownerReferences = feedFor(theirs, 3).metadata.ownerReferences;
    assert.match(await createAsRunner(foreignOwner), /controller reference to CrawlJob books/);
    const wrongUid = feedFor(mine, 4);
    wrongUid.metadata.ownerReferences![0]!.uid = theirs.metadata.uid!;
    assert.match(await createAsRunner(wrongUid), new RegExp(`ownerReference uid must be ${mine.metadata.uid}`));
    const noOwner = feedFor(mine, 5);
    delete noOwner.metadata.ownerReferences;
    assert.match(await createAsRunner(noOwner), /controller reference to CrawlJob books/);
  });

  it("an admin is not matched by the policy", async () => {
    const created = await createFeedAsRunner(kc, theirs, feedEvent("s3://crawl-data/books/part-00006.jsonl"));
    assert.equal(created.metadata.labels?.["feedcrawl.io/crawljob"], "other");
  });

  it("a forged CrawlFeed with a URI the job's feeds do not name is Failed with an Event, never POSTed", async () => {
    const uri = "s3://another-tenant-bucket/books/part-00001.jsonl";
    const forged = await createFeedAsRunner(kc, mine, feedEvent(uri));
    const settled = await driveFeed(kc, reconciler, ns.name, forged.metadata.name!);
    assert.equal(settled.status?.delivery?.state, "Failed");
    assert.equal(settled.status?.delivery?.attempts, 0);
    assert.match(
      settled.status?.delivery?.lastError ?? "",
      /URI s3:\/\/another-tenant-bucket\/books\/part-00001\.jsonl/,
    );
    assert.match(settled.status?.delivery?.lastError ?? "", /does not match feed .* of CrawlJob books/);
    const events = await eventually("the DeliveryFailed Event", async () => {
      const list = await eventsFor(kc, ns.name, forged.metadata.name!);
      return list.length > 0 ? list : undefined;
    });
    assert.equal(events[0]?.reason, "DeliveryFailed");
    assert.match(events[0]?.message ?? "", /another-tenant-bucket/);
    assert.equal(receiver.received.length, 0, "the backend saw nothing");

    // The runner's own, well-formed feed still goes through.
    receiver.respond = () => ({ status: 200 });
    const good = await driveFeed(kc, reconciler, ns.name, feedFor(mine, 1).metadata.name!);
    assert.equal(good.status?.delivery?.state, "Delivered");
    assert.deepEqual(
      receiver.received.map((r) => (r.body as { feed: { uri: string } }).feed.uri),
      ["s3://crawl-data/books/part-00001.jsonl"],
    );
  });

  it("the chart ships the same policy as crds/", async () => {
    const strip = (o: { metadata?: unknown; spec: Record<string, unknown> }) => {
      const { policyName: _, ...spec } = o.spec;
      return spec;
    };
    const rendered = await render();
    const chart = [
      ...find(rendered, "ValidatingAdmissionPolicy"),
      ...find(rendered, "ValidatingAdmissionPolicyBinding"),
    ] as unknown as { spec: Record<string, unknown> }[];
    const file = (await import("node:fs")).readFileSync(POLICY_FILE, "utf8").split(/^---$/m);
    const crds = file.map((text) => parse(text) as { spec: Record<string, unknown> });
    assert.equal(chart.length, 2);
    assert.deepEqual(chart.map(strip), crds.map(strip));
  });
});
