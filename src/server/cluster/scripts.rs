//! The Lua scripts the loop runs in Redis (each atomic on the server).

/// Sums a user's sockets over live nodes other than `ARGV[3]`.
/// KEYS[1] = nodes set; ARGV = prefix, user, self node id.
pub(super) const PRESENCE_ELSEWHERE: &str = r"
local n = 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if node ~= ARGV[3] and redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 1 then
    n = n + tonumber(redis.call('HGET', ARGV[1] .. ':presence:' .. node, ARGV[2]) or '0')
  end
end
return n";

/// Reaps dead nodes (no heartbeat key): removes them from the set (one node wins each), and
/// returns their users who are on no live node now, recording their last-seen time.
/// KEYS[1] = nodes set; ARGV = prefix, self node id, now ms.
pub(super) const REAP_DEAD_NODES: &str = r"
local users = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if node ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 0 then
    if redis.call('SREM', KEYS[1], node) == 1 then
      for _, u in ipairs(redis.call('HKEYS', ARGV[1] .. ':presence:' .. node)) do table.insert(users, u) end
      redis.call('DEL', ARGV[1] .. ':presence:' .. node)
    end
  end
end
local live = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 1 then table.insert(live, node) end
end
local out = {}
for _, u in ipairs(users) do
  local n = 0
  for _, node in ipairs(live) do
    n = n + tonumber(redis.call('HGET', ARGV[1] .. ':presence:' .. node, u) or '0')
  end
  if n == 0 then
    redis.call('HSET', ARGV[1] .. ':lastseen', u, ARGV[3])
    table.insert(out, u)
  end
end
return out";

/// Users connected to room ARGV[2] on any live node. KEYS[1] = nodes set; ARGV[1] = prefix.
pub(super) const ROOM_MEMBERS: &str = r"
local seen, out = {}, {}
local p = ARGV[2] .. '\t'
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 1 then
    for _, f in ipairs(redis.call('HKEYS', ARGV[1] .. ':room-members:' .. node)) do
      if string.sub(f, 1, #p) == p then
        local u = string.sub(f, #p + 1)
        if not seen[u] then seen[u] = true; table.insert(out, u) end
      end
    end
  end
end
return out";

/// For each user in ARGV[2..]: sockets over all live nodes, and last seen.
/// KEYS[1] = nodes set; ARGV[1] = prefix.
pub(super) const PRESENCE_QUERY: &str = r"
local live = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 1 then table.insert(live, node) end
end
local out = {}
for i = 2, #ARGV do
  local n = 0
  for _, node in ipairs(live) do
    n = n + tonumber(redis.call('HGET', ARGV[1] .. ':presence:' .. node, ARGV[i]) or '0')
  end
  table.insert(out, n)
  table.insert(out, redis.call('HGET', ARGV[1] .. ':lastseen', ARGV[i]) or '')
end
return out";

/// Queues a notification unless the user is online on a live node (or the event id was
/// queued before). KEYS[1] = nodes set, KEYS[2] = mailbox list; ARGV = prefix, user, payload,
/// cap, ttl ms, event id ('' for none).
pub(super) const MAILBOX_PUSH: &str = r"
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. ':node:' .. node) == 1 then
    if tonumber(redis.call('HGET', ARGV[1] .. ':presence:' .. node, ARGV[2]) or '0') > 0 then
      return 0
    end
  end
end
if ARGV[6] ~= '' then
  if not redis.call('SET', ARGV[1] .. ':mailbox-seen:' .. ARGV[6], '1', 'NX', 'PX', ARGV[5]) then
    return 0
  end
end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1";

/// Takes the whole mailbox atomically (exactly once across nodes). KEYS[1] = mailbox list.
pub(super) const MAILBOX_TAKE: &str = r"
local v = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return v";

/// Appends one broadcast to a namespace's recovery log and publishes it with its entry id, in
/// one atomic step, so the order of the publications is the order of the ids.
/// KEYS[1] = stream, KEYS[2] = the logger lease (mode `fenced`) or the claim key (mode
/// `claim`), KEYS[3] = the per-process sequence hash;
/// ARGV = mode (`own` | `fenced` | `claim`), this process's uid, channel, slot (the message
/// without its offset value), MAXLEN, window ms, claim ttl ms, sequence number.
/// The sequence makes a pipeline sent again after a cut connection log nothing twice.
/// Returns the entry id, or false when nothing was logged.
pub(super) const LOG_BROADCAST: &str = r"
local seq = tonumber(ARGV[8])
if seq <= tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0') then return false end
redis.call('HSET', KEYS[3], ARGV[2], seq)
redis.call('PEXPIRE', KEYS[3], ARGV[6])
if ARGV[1] == 'fenced' and redis.call('GET', KEYS[2]) ~= ARGV[2] then return false end
if ARGV[1] == 'claim' and not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[7]) then
  return false
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', 'd', ARGV[4])
local t = redis.call('TIME')
local floor = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[6])
if floor > 0 then redis.call('XTRIM', KEYS[1], 'MINID', '~', floor .. '-0') end
redis.call('PUBLISH', ARGV[3], ARGV[4] .. string.char(0xd9, #id) .. id)
return id";

/// The logger lease: renews it when this process holds it (1), takes it when free (2, and
/// publishes `<uid>:<n>` on the sync channel so the new holder knows when it has read every
/// log publication made before it took over), else 0.
/// KEYS[1] = lease; ARGV = uid, ttl ms, sync channel, n.
pub(super) const LOGGER_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('PUBLISH', ARGV[3], ARGV[1] .. ':' .. ARGV[4])
  return 2
end
return 0";

/// Writes a live socket's recovery session: `sid`, `ns`, `u` (user, '' anonymous), `r` (rooms
/// as JSON) and `co` (the log's last id now: a reconnect without an offset replays after it).
/// KEYS[1] = session hash, KEYS[2] = stream; ARGV = sid, nsp, user, rooms, ttl ms.
pub(super) const SESSION_OPEN: &str = r"
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local co = '0-0'
if last[1] then co = last[1][1] end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'sid', ARGV[1], 'ns', ARGV[2], 'u', ARGV[3], 'r', ARGV[4], 'co', co)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return co";

/// Takes a recovery session for a reconnect and reads what the socket missed.
/// KEYS[1] = session hash, KEYS[2] = stream; ARGV = user ('' anonymous), nsp, offset ('' for
/// none: the session's `co`).
/// Returns {0} unknown (or an offset that is no log id: not ours to judge), {1} another user's
/// (the session stays), {3} entries were trimmed and the offset is older than the first one
/// left (session taken, not recovered; conservative: the reference fails the same way),
/// or {2, sid, rooms, tip, id1, slot1, id2, slot2, ...}: tip is the log's last id now.
pub(super) const SESSION_TAKE: &str = r"
local s = redis.call('HMGET', KEYS[1], 'sid', 'ns', 'u', 'r', 'co')
if not s[1] then return {0} end
if s[3] ~= ARGV[1] or s[2] ~= ARGV[2] then return {1} end
local after = ARGV[3]
if after == '' then after = s[5] end
local function id(x)
  local ms, sq = string.match(x or '', '^(%d+)-(%d+)$')
  if not ms then return nil end
  return {tonumber(ms), tonumber(sq)}
end
local a = id(after)
if not a then return {0} end
redis.call('DEL', KEYS[1])
local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[2])
if ok then
  local f = {}
  for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
  -- Entries were trimmed and the offset is not inside what is left: as the reference does
  -- with an offset it no longer has, the recovery fails.
  if tonumber(f['entries-added'] or 0) > tonumber(f['length'] or 0) then
    local first = f['first-entry'] and id(f['first-entry'][1])
    if not first or a[1] < first[1] or (a[1] == first[1] and a[2] < first[2]) then return {3} end
  end
end
local out = {2, s[1], s[4], after}
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if last[1] then out[4] = last[1][1] end
for _, e in ipairs(redis.call('XRANGE', KEYS[2], '(' .. after, '+')) do
  table.insert(out, e[1])
  table.insert(out, e[2][2])
end
return out";
