-- Adds a job to a sorted set (schedule, retry, dead), scored by epoch seconds.
--
-- KEYS[1]  the sorted set
-- ARGV[1]  when, in epoch milliseconds (the caller's clock)
-- ARGV[2]  the job's JSON
-- ARGV[3]  "1" for the dead set: trim it afterwards
-- ARGV[4]  the dead set's maximum size (DEAD_MAX_JOBS)
-- ARGV[5]  the dead set's time limit, in milliseconds (DEAD_TIMEOUT_MS)
--
-- Equal times keep their insertion order, as in the memory backend: the score
-- is the millisecond plus one microsecond more than the last entry of that
-- millisecond (Sidekiq's own scores carry microseconds too), so a virtual
-- clock that stands still does not leave the order to the members' bytes.
-- A millisecond with 1,000 entries already shares its last score.
local function score(micros)
  return string.format('%d.%06d', math.floor(micros / 1000000), micros % 1000000)
end

local at_ms = tonumber(ARGV[1])
local first = at_ms * 1000
local last = first + 999
local micros = first
local previous = redis.call('ZREVRANGEBYSCORE', KEYS[1], score(last), score(first),
  'WITHSCORES', 'LIMIT', 0, 1)
if previous[2] then
  micros = math.min(math.floor(tonumber(previous[2]) * 1000000 + 0.5) + 1, last)
end
redis.call('ZADD', KEYS[1], score(micros), ARGV[2])

if ARGV[3] == '1' then
  -- Sidekiq's DeadSet#kill: drop what is older than the time limit, then the
  -- oldest beyond the size limit.
  local cutoff_ms = at_ms - tonumber(ARGV[5])
  if cutoff_ms > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. score(cutoff_ms * 1000))
  end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[4]) + 1))
end
return 1
