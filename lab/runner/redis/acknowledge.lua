-- Drops a finished job from a process's in-progress list.
--
-- KEYS[1]  the in-progress list (inprogress:<identity>)
-- KEYS[2]  the set of identities that have an in-progress list (inprogress)
-- ARGV[1]  the process identity
-- ARGV[2]  the job's JSON as the lab writes it
-- ARGV[3]  the job's jid
--
-- The exact payload first (LREM); a payload another client wrote (Ruby's key
-- order and number formats, Sidekiq 8's milliseconds) is found by its jid.
-- Returns how many entries were removed (0 or 1).
local removed = redis.call('LREM', KEYS[1], 1, ARGV[2])
if removed == 0 then
  for _, payload in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    local ok, job = pcall(cjson.decode, payload)
    if ok and type(job) == 'table' and job['jid'] == ARGV[3] then
      removed = redis.call('LREM', KEYS[1], 1, payload)
      break
    end
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
end
return removed
