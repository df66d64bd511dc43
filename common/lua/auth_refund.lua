-- Gives back the token (and the request count) that a request took from its key's rate
-- bucket, for a request that is handed on whole instead of served: a raw transfer's check
-- that sends it to the worker's own route, which takes one again. Never above the burst.
--
-- KEYS[1]  key:<id>
-- Returns  1 given back, 0 no such key
local f = redis.call('HMGET', KEYS[1], 'tokens', 'rate', 'burst', 'requests')
if not f[1] then
  return 0
end
local rate = tonumber(f[2]) or 1
local burst = tonumber(f[3]) or rate
local requests = tonumber(f[4]) or 0
redis.call('HSET', KEYS[1], 'tokens', math.min(burst, tonumber(f[1]) + 1),
           'requests', requests > 0 and requests - 1 or 0)
return 1
