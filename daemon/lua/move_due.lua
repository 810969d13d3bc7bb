-- move_due: moves a due entry to the handler's retry stream (R-D4).
-- KEYS[1] source stream    KEYS[2] retry stream    KEYS[3] due zset
-- ARGV[1] source group    ARGV[2] entry id    ARGV[3] due-zset member
-- ARGV[4] retry group    ARGV[5] scheduled consumer    ARGV[6..] field, value, ...
-- The retry group is created at the stream's end when missing, so the new
-- entry is the next one it reads. The member is removed last, so an error in
-- between leaves it to be tried again.
-- Returns: the new retry entry id (string)
--   | 0  = gone: the member is no longer in the zset (another daemon moved it)
--   | -3 = not due yet on Redis's clock (nothing changes)
--   | -1 = not pending under the scheduled consumer (settled or taken back):
--          the member is dropped, nothing else changes.
local score = redis.call('ZSCORE', KEYS[3], ARGV[3])
if not score then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(score) > now then return -3 end
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[5] then
  redis.call('ZREM', KEYS[3], ARGV[3])
  return -1
end
redis.pcall('XGROUP', 'CREATE', KEYS[2], ARGV[4], '$', 'MKSTREAM')
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 6))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[3])
return id
