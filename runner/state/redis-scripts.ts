// The Lua scripts of the Redis crawl state (redis-state.ts): each step of
// types.ts's CrawlState is one script, so it is atomic across every worker.
// Times come from Redis (TIME), never from the workers' clocks.
//
// ARGV[1] is the job's key prefix (`fc:{JOB}:`: one hash tag, so a Redis
// Cluster keeps a job on one slot), ARGV[2] the job's epoch (a script run on a
// Redis that lost the job's keys fails with FRONTIER_LOST instead of crawling
// again from nothing), ARGV[3] the worker id, ARGV[4] the worker's generation
// (fenced steps fail with LEASES_LOST once the worker was presumed dead and
// its pages went back to the queue, or a newer process took its id).
//
// Keys under the prefix (K = page key, W = worker id):
//   epoch                      random id written when the job's state is created
//   seen                       set of every page key ever enqueued
//   requeue, prio, queue       lists of "K<TAB>request JSON", served in that order
//   page                       hash K → request JSON, for every page handed out and not done
//   owner                      hash K → W holding it (absent: orphan, see pins)
//   active                     set of K handed out and not yet processed
//   produced, committed        hash K → {feed: count} JSON (processed / committed items)
//   pins                       hash K → how many pending batches hold its items
//   workers                    zset W → lease expiry (ms); gen:W its generation
//   wl:W                       set of K held by W (handed out or processed, not done)
//   lastcall:W, lastlease:W    W's last dequeue call and what it got (a resent call gets the same)
//   everyone                   set of every W that ever opened the job
//   pending:W, stored:W        hash "feed<LF>batchId" → PendingBatch JSON, FeedClosed JSON
//   lastbatch:W                hash feed → highest committed batch id
//   done                       count of done pages; finished: the finish reason
//   hosts, h:HOST:slots|next|throttle, robots, robots-lock:ORIGIN   politeness (redis-politeness.ts)
//
// A dead worker's pages (its lease expired, or its id opened again): those
// held by one of its pending batches stay where they are as orphans until the
// batch is committed or discarded (its items may be delivered already); the
// others go back to the queue at once, keeping their committed counts.

const FUNCTIONS = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function fenced()
  if redis.call('GET', p .. 'gen:' .. W) ~= G then
    return redis.error_reply('LEASES_LOST worker ' .. W .. ' was presumed dead (lease expired) or replaced; its pages went back to the queue')
  end
end
local function counts(k, hash)
  local v = redis.call('HGET', p .. hash, k)
  if v then return cjson.decode(v) end
  return {}
end
local function covers(committed, produced)
  for feed, n in pairs(produced) do
    if (committed[feed] or 0) < n then return false end
  end
  return true
end
local function forget(k)
  local w = redis.call('HGET', p .. 'owner', k)
  if w then redis.call('SREM', p .. 'wl:' .. w, k) end
  redis.call('HDEL', p .. 'page', k)
  redis.call('HDEL', p .. 'owner', k)
  redis.call('HDEL', p .. 'produced', k)
  redis.call('HDEL', p .. 'committed', k)
  redis.call('HDEL', p .. 'pins', k)
  redis.call('SREM', p .. 'active', k)
end
local function mark_done(k)
  forget(k)
  redis.call('INCR', p .. 'done')
end
local function requeue(k)
  local req = redis.call('HGET', p .. 'page', k)
  local committed = redis.call('HGET', p .. 'committed', k)
  forget(k)
  if not req then return end
  if committed then redis.call('HSET', p .. 'committed', k, committed) end
  redis.call('RPUSH', p .. 'requeue', k .. '\\t' .. req)
end
-- Takes every page of worker w away from it: pinned ones become orphans, the rest are requeued. Returns how many were requeued.
local function reap(w)
  local n = 0
  for _, k in ipairs(redis.call('SMEMBERS', p .. 'wl:' .. w)) do
    if tonumber(redis.call('HGET', p .. 'pins', k) or '0') > 0 then
      redis.call('HDEL', p .. 'owner', k)
      redis.call('SREM', p .. 'active', k)
    else
      requeue(k)
      n = n + 1
    end
  end
  redis.call('DEL', p .. 'wl:' .. w, p .. 'lastcall:' .. w, p .. 'lastlease:' .. w, p .. 'gen:' .. w)
  redis.call('ZREM', p .. 'workers', w)
  for _, h in ipairs(redis.call('SMEMBERS', p .. 'hosts')) do
    local slots = p .. 'h:' .. h .. ':slots'
    for _, t in ipairs(redis.call('ZRANGE', slots, 0, -1)) do
      if string.sub(t, 1, #w + 1) == w .. '|' then redis.call('ZREM', slots, t) end
    end
  end
  return n
end
-- After a pending batch let go of page k: an orphan no batch holds any more is done if its items are all committed, else requeued.
local function unpin(k)
  local pins = redis.call('HINCRBY', p .. 'pins', k, -1)
  if pins <= 0 then redis.call('HDEL', p .. 'pins', k) end
  if pins > 0 or redis.call('HEXISTS', p .. 'owner', k) == 1 or redis.call('HEXISTS', p .. 'page', k) == 0 then return end
  local produced = redis.call('HGET', p .. 'produced', k)
  if produced and covers(counts(k, 'committed'), cjson.decode(produced)) then mark_done(k) else requeue(k) end
end
`;

const PRELUDE = `
local p, W, G = ARGV[1], ARGV[3], ARGV[4]
if redis.call('GET', p .. 'epoch') ~= ARGV[2] then
  return redis.error_reply('FRONTIER_LOST the crawl state ' .. p .. ' has no epoch ' .. ARGV[2])
end
${FUNCTIONS}`;

/**
 * Joins the crawl as worker W with generation G (ARGV[4], new per process),
 * creating the epoch (ARGV[2]) if the job has none, and takes back every page
 * of W's previous process. An empty W: the lowest free "wN" is claimed.
 * Returns {epoch, W, status, finish reason, requeued, done, then per pending
 * batch its JSON and its stored FeedClosed JSON or ""}. Runs before the epoch
 * check: it sets it.
 */
export const OPEN = `
local p, W, G, lease_ms = ARGV[1], ARGV[3], ARGV[4], tonumber(ARGV[5])
local fresh = redis.call('EXISTS', p .. 'seen') == 0
redis.call('SET', p .. 'epoch', ARGV[2], 'NX')
local epoch = redis.call('GET', p .. 'epoch')
${FUNCTIONS}
if W == '' then
  -- No id given: the lowest wN not held by a live process (a dead one's id is taken over, with its pending batches).
  local now, i = now_ms(), 0
  while true do
    local score = redis.call('ZSCORE', p .. 'workers', 'w' .. i)
    if not score or tonumber(score) <= now then break end
    i = i + 1
  end
  W = 'w' .. i
end
local requeued = reap(W)
redis.call('SET', p .. 'gen:' .. W, G)
redis.call('SADD', p .. 'everyone', W)
redis.call('ZADD', p .. 'workers', now_ms() + lease_ms, W)
local reason = redis.call('GET', p .. 'finished')
local status = 'resumed'
if reason then status = 'finished' elseif fresh then status = 'new' end
local out = {epoch, W, status, reason or '', requeued, tonumber(redis.call('GET', p .. 'done') or '0')}
for _, f in ipairs(redis.call('HKEYS', p .. 'pending:' .. W)) do
  out[#out + 1] = redis.call('HGET', p .. 'pending:' .. W, f)
  out[#out + 1] = redis.call('HGET', p .. 'stored:' .. W, f) or ''
end
return out
`;

/** ARGV[5..]: "K<TAB>json<TAB>prio|queue" entries; returns 1/0 per entry (added / seen before). */
export const ENQUEUE = `${PRELUDE}
local out = {}
for i = 5, #ARGV do
  local e = ARGV[i]
  local t1 = string.find(e, '\\t', 1, true)
  local t2 = #e - string.find(string.reverse(e), '\\t', 1, true) + 1
  local k = string.sub(e, 1, t1 - 1)
  if redis.call('SADD', p .. 'seen', k) == 1 then
    redis.call('RPUSH', p .. string.sub(e, t2 + 1), string.sub(e, 1, t2 - 1))
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
`;

/**
 * Reaps workers whose lease expired, then hands up to ARGV[6] pages to W
 * (requeued, then prio, then queue), unless call ARGV[5] was answered already:
 * then the same pages again. ARGV[7]: the lease, ms. Returns {K, json,
 * committed JSON or "", ...}.
 */
export const DEQUEUE = `${PRELUDE}
local f = fenced()
if f then return f end
local call, max, lease_ms = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local now = now_ms()
for _, d in ipairs(redis.call('ZRANGEBYSCORE', p .. 'workers', '-inf', now, 'LIMIT', 0, 20)) do
  if d ~= W then reap(d) end
end
redis.call('ZADD', p .. 'workers', now + lease_ms, W)
local out = {}
local function hand(k)
  out[#out + 1] = k
  out[#out + 1] = redis.call('HGET', p .. 'page', k)
  out[#out + 1] = redis.call('HGET', p .. 'committed', k) or ''
end
if redis.call('GET', p .. 'lastcall:' .. W) == call then
  for _, k in ipairs(redis.call('LRANGE', p .. 'lastlease:' .. W, 0, -1)) do
    if redis.call('HGET', p .. 'owner', k) == W then hand(k) end
  end
  return out
end
redis.call('SET', p .. 'lastcall:' .. W, call)
redis.call('DEL', p .. 'lastlease:' .. W)
for _ = 1, max do
  local e = redis.call('LPOP', p .. 'requeue') or redis.call('LPOP', p .. 'prio') or redis.call('LPOP', p .. 'queue')
  if not e then break end
  local tab = string.find(e, '\\t', 1, true)
  local k = string.sub(e, 1, tab - 1)
  redis.call('HSET', p .. 'page', k, string.sub(e, tab + 1))
  redis.call('HSET', p .. 'owner', k, W)
  redis.call('SADD', p .. 'wl:' .. W, k)
  redis.call('SADD', p .. 'active', k)
  redis.call('RPUSH', p .. 'lastlease:' .. W, k)
  hand(k)
end
return out
`;

/** Extends W's lease by ARGV[5] ms; -1 when W was presumed dead or replaced (its generation is gone). */
export const HEARTBEAT = `${PRELUDE}
if redis.call('GET', p .. 'gen:' .. W) ~= G then return -1 end
redis.call('ZADD', p .. 'workers', now_ms() + tonumber(ARGV[5]), W)
return 1
`;

/** Page ARGV[5] was handled by W, producing ARGV[6] ({feed: count} JSON). Fenced; no-op unless W holds it. */
export const PROCESSED = `${PRELUDE}
local f = fenced()
if f then return f end
local k = ARGV[5]
if redis.call('HGET', p .. 'owner', k) ~= W then return 0 end
redis.call('SREM', p .. 'active', k)
local produced = cjson.decode(ARGV[6])
if covers(counts(k, 'committed'), produced) then mark_done(k) else redis.call('HSET', p .. 'produced', k, ARGV[6]) end
return 1
`;

/** Records W's pending batch ARGV[5] (JSON) under field ARGV[6]; fenced: every page must still be W's. */
export const BEGIN_BATCH = `${PRELUDE}
local f = fenced()
if f then return f end
local batch, field = cjson.decode(ARGV[5]), ARGV[6]
for _, pc in ipairs(batch.pages) do
  if redis.call('HGET', p .. 'owner', pc[1]) ~= W then
    return redis.error_reply('LEASES_LOST page ' .. pc[1] .. ' of batch ' .. field .. ' is no longer held by worker ' .. W)
  end
end
local old = redis.call('HGET', p .. 'pending:' .. W, field)
if old then for _, pc in ipairs(cjson.decode(old).pages) do unpin(pc[1]) end end
for _, pc in ipairs(batch.pages) do redis.call('HINCRBY', p .. 'pins', pc[1], 1) end
redis.call('HSET', p .. 'pending:' .. W, field, ARGV[5])
redis.call('HDEL', p .. 'stored:' .. W, field)
return 1
`;

/**
 * Remembers `stored` (ARGV[6], FeedClosed JSON, kept verbatim) of W's pending batch ARGV[5]; no-op when unknown.
 * Fenced: once a newer process of W took the batch over (and may be deleting its object), the old one must not report it.
 */
export const BATCH_STORED = `${PRELUDE}
local f = fenced()
if f then return f end
if redis.call('HEXISTS', p .. 'pending:' .. W, ARGV[5]) == 0 then return 0 end
redis.call('HSET', p .. 'stored:' .. W, ARGV[5], ARGV[6])
return 1
`;

/**
 * Ends W's pending batch ARGV[5] (feed ARGV[6], id ARGV[7]): ARGV[8] "commit"
 * adds its counts to committed (pages now covered and processed are done) and
 * raises the feed's last batch id; "discard" only lets go of its pages.
 */
export const END_BATCH = `${PRELUDE}
local f = fenced()
if f then return f end
local field, feed, how = ARGV[5], ARGV[6], ARGV[8]
local v = redis.call('HGET', p .. 'pending:' .. W, field)
if not v then return 0 end
local b = cjson.decode(v)
for _, pc in ipairs(b.pages) do
  local k, n = pc[1], pc[2]
  if redis.call('HEXISTS', p .. 'page', k) == 1 then
    if how == 'commit' then
      local committed = counts(k, 'committed')
      committed[feed] = (committed[feed] or 0) + n
      redis.call('HSET', p .. 'committed', k, cjson.encode(committed))
      local produced = redis.call('HGET', p .. 'produced', k)
      if produced and redis.call('HGET', p .. 'owner', k) == W and covers(committed, cjson.decode(produced)) then
        mark_done(k)
      else
        unpin(k)
      end
    else
      unpin(k)
    end
  end
end
if how == 'commit' then
  local id = tonumber(ARGV[7])
  local stored = redis.call('HGET', p .. 'stored:' .. W, field)
  if stored then id = tonumber(cjson.decode(stored).batchId) or id end
  local last = tonumber(redis.call('HGET', p .. 'lastbatch:' .. W, feed) or '-1')
  if id > last then redis.call('HSET', p .. 'lastbatch:' .. W, feed, id) end
end
redis.call('HDEL', p .. 'pending:' .. W, field)
redis.call('HDEL', p .. 'stored:' .. W, field)
return 1
`;

/** {queued, active (handed out, not processed), unfinished (not done: queued or held), done, finished reason or ""}. */
export const PROGRESS = `${PRELUDE}
local queued = redis.call('LLEN', p .. 'requeue') + redis.call('LLEN', p .. 'prio') + redis.call('LLEN', p .. 'queue')
return {queued, redis.call('SCARD', p .. 'active'), queued + redis.call('HLEN', p .. 'page'),
        tonumber(redis.call('GET', p .. 'done') or '0'), redis.call('GET', p .. 'finished') or ''}
`;

/**
 * Marks the crawl finished with reason ARGV[5] if no page is queued or held
 * and no worker has a pending batch; then every key of the job expires in
 * ARGV[6] seconds (the finished marker too: a rerun within that time is told
 * the crawl is over). Returns 1 if finished.
 */
export const FINISH = `${PRELUDE}
if redis.call('LLEN', p .. 'requeue') + redis.call('LLEN', p .. 'prio') + redis.call('LLEN', p .. 'queue')
   + redis.call('HLEN', p .. 'page') > 0 then return 0 end
local workers = redis.call('SMEMBERS', p .. 'everyone')
for _, w in ipairs(workers) do
  if redis.call('HLEN', p .. 'pending:' .. w) > 0 then return 0 end
end
local ttl = tonumber(ARGV[6])
redis.call('SET', p .. 'finished', ARGV[5], 'NX')
local keys = {'epoch', 'seen', 'requeue', 'prio', 'queue', 'page', 'owner', 'active', 'produced', 'committed', 'pins',
              'workers', 'everyone', 'done', 'finished', 'hosts', 'robots'}
for _, w in ipairs(workers) do
  for _, k in ipairs({'gen:', 'wl:', 'lastcall:', 'lastlease:', 'pending:', 'stored:', 'lastbatch:'}) do
    keys[#keys + 1] = k .. w
  end
end
for _, h in ipairs(redis.call('SMEMBERS', p .. 'hosts')) do
  for _, k in ipairs({'slots', 'next', 'throttle'}) do keys[#keys + 1] = 'h:' .. h .. ':' .. k end
end
for _, k in ipairs(keys) do redis.call('EXPIRE', p .. k, ttl) end
return 1
`;

/**
 * The politeness gate of host ARGV[5], shared by every worker: takes one of
 * its ARGV[7] slots for token ARGV[6] ("W|random": a slot frees itself after
 * ARGV[9] ms, or when W's id is opened again) if one is free and the host's
 * next-allowed time has passed; then the next request to the host waits
 * max(ARGV[8], the host's AutoThrottle delay) ms. Returns {1, 0} when taken,
 * {-1, ms until the first slot expires} when all are taken, {0, ms to wait}
 * for the delay.
 */
export const ACQUIRE = `${PRELUDE}
local host, token, per_host, delay, ttl = ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local slots = p .. 'h:' .. host .. ':slots'
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
if redis.call('ZSCORE', slots, token) then return {1, 0} end
if redis.call('ZCARD', slots) >= per_host then
  local first = redis.call('ZRANGE', slots, 0, 0, 'WITHSCORES')
  return {-1, tonumber(first[2]) - now}
end
local nxt = tonumber(redis.call('GET', p .. 'h:' .. host .. ':next') or '0')
if nxt > now then return {0, nxt - now} end
redis.call('SADD', p .. 'hosts', host)
redis.call('ZADD', slots, now + ttl, token)
local throttle = tonumber(redis.call('GET', p .. 'h:' .. host .. ':throttle') or '0')
if throttle > delay then delay = throttle end
if delay > 0 then redis.call('SET', p .. 'h:' .. host .. ':next', now + delay, 'PX', delay + 1000) end
return {1, 0}
`;

/** Frees host ARGV[5]'s slot of token ARGV[6]. */
export const RELEASE_SLOT = `${PRELUDE}
return redis.call('ZREM', p .. 'h:' .. ARGV[5] .. ':slots', ARGV[6])
`;
