-- Claims the settling of a deleted sandbox's record. One caller at a time settles a record:
-- it removes the sandbox's network rules, then gives back what the record held in one step
-- (sandbox_settle). A claim older than ARGV[1] ms was left by a process killed half-way
-- through, and is taken over.
--
-- KEYS[1]  sandbox:<id>     ARGV[1] how old a claim is when it is stale (ms)
-- ARGV[2]  the caller's token: the claim is its own while settling_by holds it
-- Returns  1 claimed, 0 the record is gone (settled), 2 another caller is settling it
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local at = tonumber(redis.call('HGET', KEYS[1], 'settling_at'))
if at and now - at < tonumber(ARGV[1]) then
  return 2
end
redis.call('HSET', KEYS[1], 'settling_at', now, 'settling_by', ARGV[2])
return 1
