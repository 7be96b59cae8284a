-- What a worker does between two jobs, in one round trip: drops the job it
-- finished from its in-progress list and counts it, then takes the next job
-- from the first non-empty queue (strict priority). Either half may be left
-- out: no queues (settle only), or an empty payload (fetch only).
--
-- KEYS[1..n]  the queue lists, in priority order (queue:high, queue:default)
-- KEYS[n+1]   the process's in-progress list (inprogress:<identity>)
-- KEYS[n+2]   the set of identities that have an in-progress list (inprogress)
-- KEYS[n+3]   stat:processed
-- KEYS[n+4]   stat:failed
-- KEYS[n+5]   the job each of the process's fetchers took last (HASH
--             inprogress:<identity>:taken, slot -> "<call>:<payload>")
-- ARGV[1]     "reliable" or "basic"
-- ARGV[2]     the process identity
-- ARGV[3]     the finished job's JSON as the lab writes it, or "" for none
-- ARGV[4]     its jid
-- ARGV[5]     what to add to stat:processed, ARGV[6] to stat:failed
-- ARGV[7]     the fetcher's slot, or "" for a one-off call; ARGV[8] its call
--
-- A call asked again (same slot and call) after its reply was lost (Redis
-- stopped between running it and answering) returns the job it took, if
-- its process still holds it, and does nothing else: it settled already,
-- and taking another job would leave that one in the in-progress list of
-- a live process, where no recovery finds it.
--
-- Settle: the exact payload first (LREM); a payload another client wrote
-- (Ruby's key order and number formats, Sidekiq 8's milliseconds) is found
-- by its jid. A counter is touched only to add to it, so acknowledging alone
-- creates no key.
--
-- Fetch, basic: RPOP, as Sidekiq OSS's BRPOP takes from the right of an
-- LPUSHed list (first in, first out); a worker that dies with the job loses
-- it. Reliable: LMOVE to the left of the in-progress list, until
-- acknowledged or recovered (Sidekiq Pro's super_fetch).
--
-- Returns the fetched payload, or false.
local n = #KEYS - 5
local held, index, taken = KEYS[n + 1], KEYS[n + 2], KEYS[n + 5]
local slot, call = ARGV[7], ARGV[8]

if slot ~= '' then
  local last = redis.call('HGET', taken, slot)
  if last then
    local sep = string.find(last, ':', 1, true)
    local payload = string.sub(last, sep + 1)
    if string.sub(last, 1, sep - 1) == call and redis.call('LPOS', held, payload) then
      return payload
    end
  end
end

if ARGV[3] ~= '' then
  local removed = redis.call('LREM', held, 1, ARGV[3])
  if removed == 0 then
    for _, payload in ipairs(redis.call('LRANGE', held, 0, -1)) do
      local ok, job = pcall(cjson.decode, payload)
      if ok and type(job) == 'table' and job['jid'] == ARGV[4] then
        redis.call('LREM', held, 1, payload)
        break
      end
    end
  end
  if redis.call('EXISTS', held) == 0 then
    redis.call('SREM', index, ARGV[2])
    redis.call('DEL', taken)
  end
  local processed, failed = tonumber(ARGV[5]), tonumber(ARGV[6])
  if processed > 0 then
    redis.call('INCRBY', KEYS[n + 3], processed)
  end
  if failed > 0 then
    redis.call('INCRBY', KEYS[n + 4], failed)
  end
end

local reliable = ARGV[1] == 'reliable'
for i = 1, n do
  local payload
  if reliable then
    payload = redis.call('LMOVE', KEYS[i], held, 'RIGHT', 'LEFT')
  else
    payload = redis.call('RPOP', KEYS[i])
  end
  if payload then
    if reliable then
      redis.call('SADD', index, ARGV[2])
      if slot ~= '' then
        redis.call('HSET', taken, slot, call .. ':' .. payload)
      end
    end
    return payload
  end
end
return false
