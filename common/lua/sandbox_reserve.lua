-- Reserves what a new sandbox holds, in one step, together with the record that holds it: a
-- place in its key's quota and in the node's capacity, and either a ready sandbox off the
-- node's warm pool or a new record with a uid slot (and with it an address) of its own.
-- From the moment this returns, whatever happens to the process that called it, the record
-- says what to give back and the node's sweep (or its pool audit) gives it back; before it,
-- nothing was taken.
--
-- KEYS[1]  sandbox:<new id>   (the record of a cold start)
-- ARGV[1]  new id      ARGV[2] node id      ARGV[3] key id, '' for the node's own warm pool
-- ARGV[4]  the node's capacity              ARGV[5] 1 if a pooled sandbox may serve
-- ARGV[6]  the node's number of uid slots   ARGV[7] a random slot, where the search starts
-- ARGV[8]  how long a cold start may take before the sweep takes it for lost (ms)
-- Returns  {1, 'pool', '<id>.<pid>.<slot>'}  a pooled sandbox, now claiming for the key
--          {1, 'cold', slot}                  a record for the new id, status creating
--          {0, used, limit}  over the key's quota       {-1}  no such key
--          {-2, capacity}    the node is full           {-3}  no free uid slot
local id, node, key_id = ARGV[1], ARGV[2], ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local k = 'key:' .. key_id
local capacity = 'node:' .. node .. ':sandboxes'
if key_id ~= '' then
  local f = redis.call('HMGET', k, 'name', 'revoked_at', 'max_sandboxes', 'used_sandboxes')
  if not f[1] or f[2] then
    return {-1}
  end
  local limit, used = tonumber(f[3]) or 0, tonumber(f[4]) or 0
  if used + 1 > limit then
    return {0, used, limit}
  end
  if (tonumber(redis.call('GET', capacity)) or 0) >= tonumber(ARGV[4]) then
    return {-2, tonumber(ARGV[4])}
  end
  -- An entry whose record is gone or no longer pooled (settled meanwhile) is dropped.
  while ARGV[5] == '1' do
    local entry = redis.call('LPOP', 'pool:' .. node)
    if not entry then
      break
    end
    local pooled = string.match(entry, '^([a-z0-9]+)%.')
    if pooled and redis.call('HGET', 'sandbox:' .. pooled, 'status') == 'pooled' then
      redis.call('HSET', 'sandbox:' .. pooled, 'status', 'claiming', 'claimed_at', now, 'key_id', key_id)
      redis.call('HINCRBY', k, 'used_sandboxes', 1)
      redis.call('INCR', capacity)
      return {1, 'pool', entry}
    end
  end
end
-- A free slot: the random one the caller picked if it is free (so that a freed address is
-- not at once given out again), else the next free one after it, else the first.
local slots, bitmap = tonumber(ARGV[6]), 'node:' .. node .. ':uid_slots'
local slot = tonumber(ARGV[7])
if slots <= 0 then
  return {-3}
end
if slot >= slots or redis.call('GETBIT', bitmap, slot) == 1 then
  slot = redis.call('BITPOS', bitmap, 0, math.floor(slot / 8))
  if slot < 0 or slot >= slots then
    slot = redis.call('BITPOS', bitmap, 0)
  end
end
if slot < 0 or slot >= slots then
  return {-3}
end
redis.call('SETBIT', bitmap, slot, 1)
if key_id ~= '' then
  redis.call('HINCRBY', k, 'used_sandboxes', 1)
  redis.call('INCR', capacity)
end
redis.call('HSET', KEYS[1], 'id', id, 'node_id', node, 'status', key_id ~= '' and 'creating' or 'pooled',
           'key_id', key_id, 'created_at', now, 'uid_slot', slot, 'image', 'base')
redis.call('ZADD', 'sandboxes:node:' .. node, now + tonumber(ARGV[8]), id)
return {1, 'cold', slot}
