-- dead_letter: appends an entry to the handler's DLQ and acks the source (R-D5).
-- KEYS[1] source stream    KEYS[2] dead-letter stream
-- ARGV[1] group    ARGV[2] entry id    ARGV[3] owner consumer ('' = any owner)
-- ARGV[4] cap (max DLQ length, '0' = none)    ARGV[5] overflow ('evict' | 'hold')
-- ARGV[6..] field, value, ...
-- With 'evict', the oldest dead letters are trimmed (exact MAXLEN cap - 1)
-- before the new one is added.
-- Returns: {DLQ entry id, entries evicted}
--   | 0  = not pending (under the owner): nothing changes
--   | -2 = the DLQ is at its cap and the overflow is 'hold': nothing changes.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 then return 0 end
if ARGV[3] ~= '' and p[1][2] ~= ARGV[3] then return 0 end
local cap = tonumber(ARGV[4])
local evicted = 0
if cap > 0 then
  local len = redis.call('XLEN', KEYS[2])
  if len >= cap then
    if ARGV[5] ~= 'evict' then return -2 end
    evicted = redis.call('XTRIM', KEYS[2], 'MAXLEN', cap - 1)
  end
end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 6))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return {id, evicted}
