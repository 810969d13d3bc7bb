-- legacy_move: migrates one entry of a legacy shared `{channel}.retry` stream
-- (R-E6) into a handler's retry stream.
-- KEYS[1] legacy stream    KEYS[2] target retry stream
-- ARGV[1] legacy group    ARGV[2] entry id    ARGV[3] target group
-- ARGV[4] kind ('pending' | 'unread')    ARGV[5] expected last-delivered id
-- ARGV[6..] field, value, ...
-- pending: only while the entry is pending in the group; XADD + XACK.
-- unread: only while the group's last-delivered id is the expected one;
-- XADD + XGROUP SETID to the entry.
-- Returns: the new entry id | 0 = nothing done.
if ARGV[4] == 'pending' then
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
  if #p == 0 then return 0 end
else
  local last = nil
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local name, lid = nil, nil
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1] end
      if g[i] == 'last-delivered-id' then lid = g[i + 1] end
    end
    if name == ARGV[1] then last = lid end
  end
  if last ~= ARGV[5] then return 0 end
end
redis.pcall('XGROUP', 'CREATE', KEYS[2], ARGV[3], '$', 'MKSTREAM')
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 6))
if ARGV[4] == 'pending' then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
else
  redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], ARGV[2])
end
return id
