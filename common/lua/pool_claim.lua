-- Takes a ready sandbox off a node's warm pool and marks it claiming, in one step, so that
-- the node's audit (which stops pooled sandboxes no longer on the list) leaves it alone
-- while a worker hands it out.
--
-- KEYS[1]  pool:<node_id>   (entries "<id>.<pid>.<uid slot>")
-- Returns  the entry, or nil when the pool is empty
local entry = redis.call('LPOP', KEYS[1])
if not entry then
  return nil
end
local id = string.match(entry, '^([a-z0-9]+)%.')
if id then
  local t = redis.call('TIME')
  redis.call('HSET', 'sandbox:' .. id, 'status', 'claiming',
              'claimed_at', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
return entry
