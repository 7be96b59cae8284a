-- Moves jobs from sorted sets (schedule, retry, dead) to the back of their
-- queues: due jobs, and "Retry Now". Each move happens only if the member is
-- still in its set, so two pollers (or a Ruby Sidekiq beside the lab) never
-- enqueue the same job twice.
--
-- KEYS[1]  queues (the set of queue names)
-- KEYS[2..] the sorted sets and queue lists the moves name
-- ARGV     groups of five: the set's KEYS index, the member as stored, the
--          payload to enqueue (with enqueued_at set), the queue's KEYS index,
--          the queue's name
-- Returns how many jobs moved.
local moved = 0
for i = 1, #ARGV, 5 do
  if redis.call('ZREM', KEYS[tonumber(ARGV[i])], ARGV[i + 1]) == 1 then
    redis.call('LPUSH', KEYS[tonumber(ARGV[i + 3])], ARGV[i + 2])
    redis.call('SADD', KEYS[1], ARGV[i + 4])
    moved = moved + 1
  end
end
return moved
