-- Writes fields of a sandbox's record that its caller read earlier, and its place in the
-- node's sweep, in one step and only while the record exists: a delete may have settled it
-- meanwhile, and a write then would leave a record of these fields alone, one that nothing
-- would ever settle.
--
-- KEYS[1]  sandbox:<id>     KEYS[2] sandboxes:node:<node_id>
-- ARGV[1]  id               ARGV[2] its new score in the node's sweep ('': unchanged)
-- ARGV[3..] field, value, ...
-- Returns  1 written, 0 the record is gone
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if ARGV[3] then
  redis.call('HSET', KEYS[1], unpack(ARGV, 3))
end
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
end
return 1
