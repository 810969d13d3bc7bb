-- job_transition: redrive job state changes, on Redis's clock.
-- KEYS[1] job hash    KEYS[2] job id list
-- ARGV[1] op    ARGV[2] owner    ARGV[3] arg    ARGV[4] error    ARGV[5] expire ms
-- heartbeat: renews the owner's heartbeat;
-- finish:    state := arg (SUCCEEDED | FAILED) with error; both keys expire;
-- cancel:    PENDING/RUNNING -> CANCELLED; both keys expire;
-- claim:     takes a RUNNING job whose heartbeat is older than arg ms;
-- advance:   the owner's RUNNING job at cursor arg moves its cursor to
--            ARGV[6] and adds ARGV[7..9] to moved, skipped, failed (the
--            hand-over of a step done by redrive_step's step-record form).
-- Returns: 1 = done | 0 = not applicable (not the running owner, already
--   ended, heartbeat fresh) | -1 = no such job | -2 = advance: the cursor
--   is elsewhere | error for an unknown op.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
if op == 'heartbeat' then
  if state ~= 'RUNNING' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 0 end
  redis.call('HSET', KEYS[1], 'heartbeat_ms', now)
  return 1
elseif op == 'finish' then
  if state ~= 'RUNNING' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 0 end
  redis.call('HSET', KEYS[1], 'state', ARGV[3], 'updated_ms', now, 'error', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  return 1
elseif op == 'cancel' then
  if state ~= 'RUNNING' and state ~= 'PENDING' then return 0 end
  redis.call('HSET', KEYS[1], 'state', 'CANCELLED', 'updated_ms', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  return 1
elseif op == 'advance' then
  if state ~= 'RUNNING' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 0 end
  if redis.call('HGET', KEYS[1], 'cursor') ~= ARGV[3] then return -2 end
  redis.call('HSET', KEYS[1], 'cursor', ARGV[6], 'updated_ms', now, 'heartbeat_ms', now)
  redis.call('HINCRBY', KEYS[1], 'moved', ARGV[7])
  redis.call('HINCRBY', KEYS[1], 'skipped', ARGV[8])
  redis.call('HINCRBY', KEYS[1], 'failed', ARGV[9])
  return 1
elseif op == 'claim' then
  if state ~= 'RUNNING' then return 0 end
  local hb = tonumber(redis.call('HGET', KEYS[1], 'heartbeat_ms') or '0')
  if hb + tonumber(ARGV[3]) > now then return 0 end
  redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'heartbeat_ms', now, 'updated_ms', now)
  redis.call('HINCRBY', KEYS[1], 'resumed', 1)
  return 1
end
return redis.error_reply('ERR unknown job transition')
