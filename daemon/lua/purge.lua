-- purge: deletes a dead-letter stream only while its length is the expected one.
-- KEYS[1] dead-letter stream
-- ARGV[1] expected count
-- Returns: the count deleted | {-1, actual length} (nothing changes).
local n = redis.call('XLEN', KEYS[1])
if n ~= tonumber(ARGV[1]) then return {-1, n} end
redis.call('DEL', KEYS[1])
return n
