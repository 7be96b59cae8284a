-- Puts the in-progress jobs of a dead process back at the taking end of
-- their queues and removes the process from the process set.
--
-- KEYS[1]  processes (the set of identities)
-- KEYS[2]  the process's hash (<identity>: info, busy, beat, quiet)
-- KEYS[3]  <identity>:work and KEYS[4] <identity>:workers (its busy jobs)
-- KEYS[5]  its in-progress list (inprogress:<identity>)
-- KEYS[6]  inprogress (the set of identities that have an in-progress list)
-- KEYS[7]  queues (the set of queue names)
-- KEYS[8]  its fetchers' last takes (inprogress:<identity>:taken)
-- KEYS[9..] the queue lists the jobs go back to
-- ARGV[1]  the identity
-- ARGV[2]  now, in epoch milliseconds (the caller's clock)
-- ARGV[3]  the heartbeat TTL, in milliseconds
-- ARGV[4..] groups of four, oldest fetch first: the payload as it is in the
--          in-progress list, the payload to enqueue (enqueued_at set), the
--          queue's KEYS index, the queue's name
--
-- The caller read the list and decided the process was dead; this checks
-- the beat again, so a process that beat in between is left alone (nil),
-- and moves only entries still in the list (one the process acknowledged in
-- between stays acknowledged; one it fetched in between stays, and is
-- recovered next time, its process gone). Returns the moved groups' numbers
-- (0-based).
local beat = tonumber(redis.call('HGET', KEYS[2], 'beat') or '')
if beat then
  -- Epoch seconds; or milliseconds, as Sidekiq 8 writes some times.
  local beat_ms = beat
  if beat <= 100000000000 then
    beat_ms = math.floor(beat * 1000 + 0.5)
  end
  if tonumber(ARGV[2]) - beat_ms <= tonumber(ARGV[3]) then
    return false
  end
end
local moved = {}
for i = 4, #ARGV, 4 do
  if redis.call('LREM', KEYS[5], 1, ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[tonumber(ARGV[i + 2])], ARGV[i + 1])
    redis.call('SADD', KEYS[7], ARGV[i + 3])
    moved[#moved + 1] = (i - 4) / 4
  end
end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[8])
if redis.call('EXISTS', KEYS[5]) == 0 then
  redis.call('SREM', KEYS[6], ARGV[1])
end
return moved
