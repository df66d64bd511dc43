-- Notes on a sandbox's record that a delete is stopping its runtime, so that the node's
-- sweep, which would take the emptied runtime for a lost one, leaves it to that delete.
-- A record already gone (settled by someone else) is not made again.
--
-- KEYS[1]  sandbox:<id>     ARGV[1] now (ms)
-- Returns  1 if noted, 0 if the record is gone
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'stopping_at', ARGV[1])
return 1
