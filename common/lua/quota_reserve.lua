-- Reserves n objects of one kind (sandboxes, databases, services) against a key's limit.
-- Check and increment happen in one script, so concurrent creates on any number of workers
-- and nodes never admit more than the limit.
--
-- KEYS[1]  key:<id>     ARGV[1] kind     ARGV[2] n
-- Returns  {1, used, limit} reserved; {0, used, limit} over the limit; {-1} no such key
local kind = ARGV[1]
local n = tonumber(ARGV[2])
local f = redis.call('HMGET', KEYS[1], 'name', 'revoked_at', 'max_' .. kind, 'used_' .. kind)
if not f[1] or f[2] then
  return {-1}
end
local limit = tonumber(f[3]) or 0
local used = tonumber(f[4]) or 0
if used + n > limit then
  return {0, used, limit}
end
used = redis.call('HINCRBY', KEYS[1], 'used_' .. kind, n)
return {1, used, limit}
