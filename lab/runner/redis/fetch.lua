-- Takes the next job from the first non-empty queue (strict priority).
--
-- KEYS[1..n]  the queue lists, in priority order (queue:high, queue:default)
-- KEYS[n+1]   the process's in-progress list (inprogress:<identity>)
-- KEYS[n+2]   the set of identities that have an in-progress list (inprogress)
-- ARGV[1]     "reliable" or "basic"
-- ARGV[2]     the process identity
--
-- Basic: RPOP, as Sidekiq OSS's BRPOP takes from the right of an LPUSHed list
-- (first in, first out); a worker that dies with the job loses it.
-- Reliable: LMOVE to the left of the in-progress list, until acknowledged or
-- recovered (Sidekiq Pro's super_fetch). Returns the payload, or nil.
local n = #KEYS - 2
local reliable = ARGV[1] == 'reliable'
for i = 1, n do
  local payload
  if reliable then
    payload = redis.call('LMOVE', KEYS[i], KEYS[n + 1], 'RIGHT', 'LEFT')
  else
    payload = redis.call('RPOP', KEYS[i])
  end
  if payload then
    if reliable then
      redis.call('SADD', KEYS[n + 2], ARGV[2])
    end
    return payload
  end
end
return false
