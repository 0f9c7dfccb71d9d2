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
