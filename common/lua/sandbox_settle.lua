-- Settles a deleted sandbox's record: the record and its index entries go, and what it held
-- (see sandbox_reserve) is given back, all in one step, so that a caller killed half-way
-- leaves either everything or nothing to settle. Every record holds its uid slot; a pooled
-- one also its place in the pool; one a key owns (or was being made or handed out for it)
-- also the key's quota and a place in the node's capacity. A sandbox the key got adds its
-- running time, less the time it spent paused, to the key's usage.
--
-- KEYS[1]  sandbox:<id>     ARGV[1] id     ARGV[2] the settling claim's token
-- Returns  1 settled, 0 the record was gone already or the claim is no longer the caller's
local f = redis.call('HMGET', KEYS[1], 'status', 'key_id', 'node_id', 'uid_slot', 'pid',
                     'created_at', 'paused_at', 'paused_ms', 'status_before', 'settling_by')
-- A delete that could not stop the runtime at once left status "deleting", and what it was
-- before in status_before.
local status, key_id, node, slot = f[9] or f[1], f[2], f[3], tonumber(f[4])
if not status or not node or f[10] ~= ARGV[2] then
  return 0
end
local id = ARGV[1]
redis.call('DEL', KEYS[1])
redis.call('ZREM', 'sandboxes:node:' .. node, id)
if slot and slot >= 0 then
  redis.call('SETBIT', 'node:' .. node .. ':uid_slots', slot, 0)
end
if slot then
  redis.call('LREM', 'pool:' .. node, 0, id .. '.' .. (f[5] or '0') .. '.' .. f[4])
end
if not key_id or key_id == '' then
  return 1
end
if (tonumber(redis.call('GET', 'node:' .. node .. ':sandboxes')) or 0) > 0 then
  redis.call('DECR', 'node:' .. node .. ':sandboxes')
end
redis.call('ZREM', 'sandboxes:key:' .. key_id, id)
local k = 'key:' .. key_id
if redis.call('EXISTS', k) == 0 then
  return 1
end
if status ~= 'creating' and status ~= 'claiming' then
  local t = redis.call('TIME')
  local stop = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if status == 'paused' then
    stop = tonumber(f[7]) or stop
  end
  local ran = stop - (tonumber(f[6]) or stop) - (tonumber(f[8]) or 0)
  if ran > 0 then
    redis.call('HINCRBY', k, 'sandbox_ms', ran)
  end
end
-- Never below zero, so that a settle racing a reset of the key leaves no negative count.
if (tonumber(redis.call('HGET', k, 'used_sandboxes')) or 0) > 0 then
  redis.call('HINCRBY', k, 'used_sandboxes', -1)
end
return 1
