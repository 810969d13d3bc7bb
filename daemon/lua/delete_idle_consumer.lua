-- delete_idle_consumer: removes a consumer from a group only while it has no
-- pending entries (R-D9).
-- KEYS[1] stream
-- ARGV[1] group    ARGV[2] consumer
-- Returns: 1 = deleted | 0 = it has pending entries (nothing changes).
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
