-- Gives back n objects of one kind; never lets the counter go below zero, so a release
-- that races a key reset cannot leave a negative count behind.
--
-- KEYS[1]  key:<id>     ARGV[1] kind     ARGV[2] n
-- Returns  the count after the release
local field = 'used_' .. ARGV[1]
local used = tonumber(redis.call('HGET', KEYS[1], field)) or 0
local n = tonumber(ARGV[2])
if n > used then
  n = used
end
if n == 0 then
  return used
end
return redis.call('HINCRBY', KEYS[1], field, -n)
