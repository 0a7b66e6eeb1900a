// What the operator trusts before it signs: a CrawlFeed's URI must be one of
// its job's feed templates with every placeholder bound to the feed's own
// values (and a bucket the operator allows), and a webhook reaches a private
// address only where the operator's list allows (a CrawlJob can only narrow
// it). Pure functions, plus real POSTs to 127.0.0.1 through the dispatchers.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import type { CrawlFeed } from "../../crds/schema/crawlfeed.ts";
import {
  createDispatchers,
  PRIVATE_NETWORKS_ENV,
  parsePrivateNetworks,
  privateNetworksFromEnv,
} from "../../operator/delivery/dispatchers.ts";
import { bucketProblem, type FeedSpecView, templateProblem } from "../../operator/delivery/feed-uri.ts";
import { type Receiver, startReceiver } from "./receiver.ts";

function feed(uri: string, over: Partial<CrawlFeed["spec"]> = {}): CrawlFeed {
  return {
    apiVersion: "feedcrawl.io/v1alpha1",
    kind: "CrawlFeed",
    metadata: { name: "books-x", namespace: "crawl" },
    spec: {
      uri,
      batchId: 7,
      shard: 1,
      format: "jsonlines",
      items: 1,
      bytes: 1,
      sha256: "a".repeat(64),
      closedAt: "2026-11-25T10:00:00Z",
      ...over,
    },
  };
}

const TEMPLATE = "s3://crawl-data/%(name)s/%(job)s/%(time)s/part-%(shard)d-%(batch_id)05d.jsonl.gz";
const view: FeedSpecView = {
  job: "books",
  spec: { spider: { name: "shop", startUrls: ["https://x.example/"] }, feeds: { [TEMPLATE]: { format: "jsonlines" } } },
};
const GOOD = "s3://crawl-data/shop/books/2026-11-25T10-00-00/part-1-00007.jsonl.gz";

describe("feed URI check (finding 5)", () => {
  it("accepts the URI the template renders for this feed, with or without spec.feed", () => {
    assert.equal(templateProblem(feed(GOOD), view), undefined);
    assert.equal(templateProblem(feed(GOOD, { feed: TEMPLATE }), view), undefined);
  });

  it("refuses another bucket, another job's folder, another batch or shard, and path tricks", () => {
    const refused = [
      "s3://another-tenant-bucket/shop/books/2026-11-25T10-00-00/part-1-00007.jsonl.gz",
      "s3://crawl-data/shop/other/2026-11-25T10-00-00/part-1-00007.jsonl.gz",
      "s3://crawl-data/shop/books/2026-11-25T10-00-00/part-1-00008.jsonl.gz",
      "s3://crawl-data/shop/books/2026-11-25T10-00-00/part-0-00007.jsonl.gz",
      "s3://crawl-data/shop/books/../../secret/part-1-00007.jsonl.gz",
      "s3://crawl-data/shop/books/2026-11-25T10-00-00/part-1-00007.jsonl.gz/../../x",
      "s3://crawl-data/shop/books/2026-11-25T10-00-00/./part-1-00007.jsonl.gz",
      `${GOOD}\n`,
    ];
    for (const uri of refused) {
      const problem = templateProblem(feed(uri), view);
      assert.ok(problem, `refused: ${uri}`);
      assert.ok(problem.includes(uri), "the reason names the URI");
    }
  });

  it("refuses a spec.feed that is not one of the job's templates", () => {
    const problem = templateProblem(feed("s3://evil/x-00007", { feed: "s3://evil/x-%(batch_id)05d" }), view);
    assert.match(problem ?? "", /names feed "s3:\/\/evil\/x-%\(batch_id\)05d", which is not in spec\.feeds/);
  });

  it("binds %(batch_time)s to a millisecond timestamp and keeps literal % signs", () => {
    const t = "file:///feeds/%(name)s-%(batch_time)s%%.jsonl";
    const v: FeedSpecView = { job: "j", spec: { spider: view.spec.spider, feeds: { [t]: { format: "jsonlines" } } } };
    assert.equal(templateProblem(feed("file:///feeds/shop-2026-11-25T10-00-00.123%.jsonl"), v), undefined);
    assert.ok(templateProblem(feed("file:///feeds/shop-anything%.jsonl"), v));
  });

  it("an operator bucket list refuses other buckets; no list allows any", () => {
    assert.equal(bucketProblem(GOOD, undefined), undefined);
    assert.equal(bucketProblem(GOOD, ["crawl-data"]), undefined);
    assert.match(bucketProblem(GOOD, ["other"]) ?? "", /names bucket crawl-data, which the operator does not allow/);
    assert.equal(bucketProblem("file:///feeds/x.jsonl", ["other"]), undefined);
  });
});

describe("webhook private networks: the operator's list (finding 7)", () => {
  let receiver: Receiver;
  before(async () => {
    receiver = await startReceiver("whsec_dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVzdA==");
  });
  after(async () => receiver.close());

  async function reach(networks: string[], allowPrivate: boolean, url = receiver.url): Promise<string> {
    const d = createDispatchers(parsePrivateNetworks(networks));
    try {
      const res = await request(url, { method: "POST", body: "{}", dispatcher: d.dispatcherFor(url, allowPrivate) });
      await res.body.dump();
      return "reached"; // an HTTP answer (the receiver's 401 for an unsigned POST): the connection was made
    } catch (err) {
      return (err as { code?: string }).code ?? String(err);
    } finally {
      await d.close();
    }
  }

  it("allowPrivateNetworks: true reaches nothing private when the operator lists nothing", async () => {
    assert.equal(await reach([], true), "EADDRBLOCKED");
  });

  it("reaches 127.0.0.1 only when the operator lists it and the job allows private networks", async () => {
    assert.equal(await reach(["127.0.0.0/8"], true), "reached");
    assert.equal(await reach(["127.0.0.0/8"], false), "EADDRBLOCKED");
    assert.equal(await reach(["10.0.0.0/8"], true), "EADDRBLOCKED");
  });

  it("a listed Service host name reaches private ranges but never loopback or link-local", async () => {
    const url = receiver.url.replace("127.0.0.1", "localhost");
    assert.equal(await reach(["localhost"], true, url), "EADDRBLOCKED");
    assert.equal(await reach(["localhost", "127.0.0.1", "::1"], true, url), "reached");
  });

  it("parses CIDRs, addresses and host names, and refuses anything else", () => {
    assert.deepEqual(parsePrivateNetworks(["10.0.0.0/8", " fd00::/8", "127.0.0.1", "Ingest.NS.svc.cluster.local"]), {
      cidrs: ["10.0.0.0/8", "fd00::/8", "127.0.0.1"],
      hosts: ["ingest.ns.svc.cluster.local"],
    });
    assert.throws(() => parsePrivateNetworks(["10.0.0.0/99"]), /Invalid CIDR/);
    assert.throws(() => parsePrivateNetworks(["*.svc"]), /a CIDR or a host name/);
    assert.deepEqual(privateNetworksFromEnv({ [PRIVATE_NETWORKS_ENV]: "127.0.0.0/8, ,10.0.0.0/8" }), [
      "127.0.0.0/8",
      "10.0.0.0/8",
    ]);
  });
});
