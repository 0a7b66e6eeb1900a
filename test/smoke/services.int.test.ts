// Smoke: the machine's PostgreSQL gives each test its own database, and
// toxiproxy proxies (and can cut) a loopback connection.
import assert from "node:assert/strict";
import { test } from "node:test";
import pg from "pg";
import { request } from "undici";
import { platform } from "../platform/env.ts";
import { pgDatabase, uniqueName } from "../platform/fixtures.ts";
import { freePort } from "../platform/ports.ts";

test("pgDatabase gives a fresh database and drops it at cleanup", async () => {
  const db = await pgDatabase("smoke_pg");
  const client = new pg.Client({ connectionString: db.connectionString });
  await client.connect();
  try {
    await client.query("create table t (id int)");
    await client.query("insert into t values (1), (2)");
    const { rows } = await client.query("select count(*)::int as n from t");
    assert.equal(rows[0].n, 2);
  } finally {
    await client.end();
    await db.cleanup();
  }
  const admin = new pg.Client({ host: "127.0.0.1", user: "postgres", database: "postgres" });
  await admin.connect();
  try {
    const { rowCount } = await admin.query("select 1 from pg_database where datname = $1", [db.name]);
    assert.equal(rowCount, 0);
  } finally {
    await admin.end();
  }
});

test("toxiproxy forwards to the S3 server and a disabled proxy refuses", async () => {
  const { toxiproxyUrl, s3 } = platform();
  const listen = `127.0.0.1:${await freePort()}`;
  const name = uniqueName("smoke-s3");
  const upstream = new URL(s3.endpoint).host;
  const created = await request(`${toxiproxyUrl}/proxies`, {
    method: "POST",
    body: JSON.stringify({ name, listen, upstream, enabled: true }),
  });
  assert.equal(created.statusCode, 201, await created.body.text());
  try {
    const through = await request(`http://${listen}/health`);
    await through.body.dump();
    assert.equal(through.statusCode, 200);
    const disabled = await request(`${toxiproxyUrl}/proxies/${name}`, {
      method: "POST",
      body: JSON.stringify({ enabled: false }),
    });
    assert.equal(disabled.statusCode, 200, await disabled.body.text());
    await assert.rejects(request(`http://${listen}/health`, { headersTimeout: 5000 }));
  } finally {
    const deleted = await request(`${toxiproxyUrl}/proxies/${name}`, { method: "DELETE" });
    await deleted.body.dump();
  }
});
