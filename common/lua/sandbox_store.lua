-- Stores the record of a sandbox just made for a key, and both of its indexes, in one
-- round trip.
--
-- KEYS[1]  sandbox:<id>
-- KEYS[2]  sandboxes:key:<key_id>    (listing, by creation time in microseconds)
-- KEYS[3]  sandboxes:node:<node_id>  (the node's lifetime sweep, by end_at)
-- ARGV[1]  id   ARGV[2] created (us)   ARGV[3] end_at (ms)   ARGV[4..] field, value, ...
-- Returns  1 stored; 0 the record was settled meanwhile (its maker took so long that the
--          sweep or the pool audit took it for lost), and stays gone
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'creating' and status ~= 'claiming' then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1
