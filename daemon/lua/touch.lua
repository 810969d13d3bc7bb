-- touch: renews leases: resets the idle time of entries (or sets it), but only
-- of those still pending under the consumer; an entry another daemon's sweep
-- took, or that waits for its retry, is left alone.
-- KEYS[1] stream
-- ARGV[1] group    ARGV[2] consumer    ARGV[3] idle ms ('' = reset to 0)
-- ARGV[4..] entry ids
-- Returns: how many entries were touched.
local n = 0
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p == 1 then
    if ARGV[3] == '' then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    else
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
    end
    n = n + 1
  end
end
return n
