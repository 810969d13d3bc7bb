-- schedule_retry: schedules a failed entry for a later retry (R-D2).
-- KEYS[1] source stream          KEYS[2] due zset
-- ARGV[1] group    ARGV[2] entry id    ARGV[3] owner consumer
-- ARGV[4] scheduled consumer    ARGV[5] delay (ms)    ARGV[6] due-zset member
-- If the entry is pending in the group under the owner: hands it to the
-- scheduled consumer (lease sweeps leave it alone while it waits) and adds
-- the member with score = Redis TIME in ms + delay.
-- Returns: the due time (ms, > 0) | 0 = not pending under the owner (nothing changes).
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = now + tonumber(ARGV[5])
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[4], 0, ARGV[2], 'JUSTID')
redis.call('ZADD', KEYS[2], due, ARGV[6])
return due
