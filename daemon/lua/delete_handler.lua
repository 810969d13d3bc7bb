-- delete_handler: retires a handler's keys (Admin.DeleteHandler).
-- KEYS[1] channel stream    KEYS[2] retry stream    KEYS[3] due zset
-- KEYS[4] dead-letter stream
-- ARGV[1] group    ARGV[2] retry group    ARGV[3] force ('1' | '0')
-- ARGV[4] expected retry entries    ARGV[5] expected dead letters
-- Destroys the group on the channel (the stream stays) and deletes the retry
-- stream, the due zset and the DLQ.
-- Returns: {status, retry entries, dead letters, group destroyed (0/1),
--   retry group existed (0/1), deleted key, ...}; status 1 = deleted,
--   -1 = entries remain (no force), -2 = force with other counts.
--   Nothing changes unless status is 1.
local function group_of(stream, name)
  if redis.call('TYPE', stream)['ok'] ~= 'stream' then return nil end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    if f['name'] == name then return f end
  end
  return nil
end
local main = group_of(KEYS[1], ARGV[1])
local retry = group_of(KEYS[2], ARGV[2])
local entries = 0
if main then entries = entries + main['pending'] end
if retry then
  entries = entries + retry['pending']
  local lag = retry['lag']
  if type(lag) ~= 'number' then
    lag = #redis.call('XRANGE', KEYS[2], '(' .. retry['last-delivered-id'], '+')
  end
  entries = entries + lag
elseif redis.call('TYPE', KEYS[2])['ok'] == 'stream' then
  entries = entries + redis.call('XLEN', KEYS[2])
end
local dead = 0
if redis.call('TYPE', KEYS[4])['ok'] == 'stream' then dead = redis.call('XLEN', KEYS[4]) end
if ARGV[3] == '1' then
  if entries ~= tonumber(ARGV[4]) or dead ~= tonumber(ARGV[5]) then
    return {-2, entries, dead}
  end
elseif entries > 0 or dead > 0 then
  return {-1, entries, dead}
end
local destroyed = 0
if main then destroyed = redis.call('XGROUP', 'DESTROY', KEYS[1], ARGV[1]) end
local out = {1, entries, dead, destroyed, retry and 1 or 0}
for i = 2, 4 do
  if redis.call('DEL', KEYS[i]) == 1 then out[#out + 1] = KEYS[i] end
end
return out
