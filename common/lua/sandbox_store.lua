-- Stores a sandbox's record and both of its indexes in one round trip.
--
-- KEYS[1]  sandbox:<id>
-- KEYS[2]  sandboxes:key:<key_id>    (listing, by creation time in microseconds)
-- KEYS[3]  sandboxes:node:<node_id>  (the node's lifetime sweep, by end_at)
-- ARGV[1]  id   ARGV[2] created (us)   ARGV[3] end_at (ms)   ARGV[4..] field, value, ...
-- Returns  1
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1
