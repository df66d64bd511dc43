-- Authenticates an API key and takes one token from its rate bucket, atomically, in one
-- round trip. Runs inside Redis, so every worker on every node sees one bucket per key.
--
-- KEYS[1]  keyhash:<sha256 of the key>   (holds the key id)
-- Returns  {0}                                   unknown or revoked key
--          {1, id, name, scopes, 0}              admitted
--          {2, id, name, scopes, retry_after_ms} over the rate
local id = redis.call('GET', KEYS[1])
if not id then
  return {0}
end
local k = 'key:' .. id
local f = redis.call('HMGET', k, 'name', 'scopes', 'rate', 'burst', 'tokens', 'ts', 'revoked_at', 'requests')
if not f[1] or f[7] then
  return {0}
end
local rate = tonumber(f[3]) or 1
local burst = tonumber(f[4]) or rate
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tokens = tonumber(f[5]) or burst
local ts = tonumber(f[6]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
end
if tokens < 1 then
  redis.call('HSET', k, 'tokens', tokens, 'ts', now)
  return {2, id, f[1], f[2], math.ceil((1 - tokens) * 1000 / rate)}
end
-- One write per admitted request: the bucket and the request counter together.
redis.call('HSET', k, 'tokens', tokens - 1, 'ts', now, 'requests', (tonumber(f[8]) or 0) + 1)
return {1, id, f[1], f[2], 0}
