-- redrive_step: one step of a redrive job (R-E2): processes the job's ids
-- number cursor .. cursor + count - 1 atomically.
-- KEYS[1] job hash, or step record    KEYS[2] dead-letter stream
-- KEYS[3] target stream
-- ARGV[1] owner ('' = KEYS[1] is the step record)    ARGV[2] cursor
-- ARGV[3] target group ('' = none)    ARGV[4] count, then per id: entry id,
--         action ('move' | 'skipped' | 'failed'), field count (2 x pairs),
--         field, value, ...    After them: the step record's expiry in ms
--         (step-record form only).
-- 'move': if the dead letter still exists, appends its fields to the target
-- (creating the target group at its end when missing), deletes the dead
-- letter and counts it moved, else skipped; an XADD that fails counts the
-- entry failed and leaves it in the DLQ.
-- Job hash form (one Redis server: every key in one script): runs only while
-- the job is RUNNING, owned by the caller and at that cursor; advances the
-- job's cursor and counters. Job hash fields: state, owner, cursor, moved,
-- skipped, failed, heartbeat_ms, updated_ms.
-- Step-record form (Redis Cluster: the job hash lives in the {redrive} slot,
-- the dead letters in their channel's): KEYS[1] is a hash beside the
-- dead-letter stream (same hash tag) recording the job's last step: from,
-- to, moved, skipped, failed. A step whose cursor is behind the record's
-- `to` already ran: nothing moves again, and its record is returned for the
-- caller to hand over to the job hash (job_transition 'advance').
-- Returns: {moved, skipped, failed}
--   | -1 = not RUNNING or not the owner    | -2 = the cursor is elsewhere
--   | -3 = the target key is not a stream (nothing changes)
--   | {-4, from, to, moved, skipped, failed} = the step-record form found the
--     step at this cursor already done (nothing changes).
local record = ARGV[1] == ''
if record then
  local done = redis.call('HMGET', KEYS[1], 'from', 'to', 'moved', 'skipped', 'failed')
  if done[2] and tonumber(done[2]) > tonumber(ARGV[2]) then
    return {-4, tonumber(done[1]), tonumber(done[2]), tonumber(done[3]), tonumber(done[4]),
            tonumber(done[5])}
  end
else
  if redis.call('HGET', KEYS[1], 'state') ~= 'RUNNING' then return -1 end
  if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return -1 end
  if redis.call('HGET', KEYS[1], 'cursor') ~= ARGV[2] then return -2 end
end
local kind = redis.call('TYPE', KEYS[3])['ok']
if kind ~= 'none' and kind ~= 'stream' then return -3 end
local n = tonumber(ARGV[4])
local moved, skipped, failed = 0, 0, 0
local created = false
local pos = 5
for _ = 1, n do
  local id, action, nf = ARGV[pos], ARGV[pos + 1], tonumber(ARGV[pos + 2])
  local first, last = pos + 3, pos + 2 + nf
  if action == 'move' then
    if #redis.call('XRANGE', KEYS[2], id, id) == 1 and nf > 0 then
      if ARGV[3] ~= '' and not created then
        redis.pcall('XGROUP', 'CREATE', KEYS[3], ARGV[3], '$', 'MKSTREAM')
        created = true
      end
      local added = redis.pcall('XADD', KEYS[3], '*', unpack(ARGV, first, last))
      if type(added) == 'table' and added['err'] then
        failed = failed + 1
      else
        redis.call('XDEL', KEYS[2], id)
        moved = moved + 1
      end
    else
      skipped = skipped + 1
    end
  elseif action == 'skipped' then
    skipped = skipped + 1
  else
    failed = failed + 1
  end
  pos = last + 1
end
local from = tonumber(ARGV[2])
if record then
  redis.call('HSET', KEYS[1], 'from', from, 'to', from + n, 'moved', moved, 'skipped', skipped,
             'failed', failed)
  redis.call('PEXPIRE', KEYS[1], ARGV[pos])
  return {moved, skipped, failed}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'cursor', from + n, 'updated_ms', now, 'heartbeat_ms', now)
redis.call('HINCRBY', KEYS[1], 'moved', moved)
redis.call('HINCRBY', KEYS[1], 'skipped', skipped)
redis.call('HINCRBY', KEYS[1], 'failed', failed)
return {moved, skipped, failed}
