-- trim_retry: trims a retry stream of the entries every group acknowledged.
-- KEYS[1] retry stream
-- ARGV[1] limit (most entries the first pass removes)    ARGV[2] retention (ms)
-- MINID = the smallest, over every group, of the group's lowest pending id
-- and the successor of its last-delivered id, capped at Redis TIME -
-- retention: no entry pending in, or unread by, any group is removed, nor
-- one younger than the retention. No group (or no stream): nothing goes.
-- A first `XTRIM MINID ~ LIMIT limit` frees whole stream nodes; an exact
-- XTRIM follows only when at most 128 entries below MINID remain.
-- Ids compare as (ms, seq) pairs of unbounded decimal strings, so sequence
-- numbers past 2^53 compare and increment exactly.
-- Returns: {entries removed, MINID, capped (1 when the retention set MINID)}
--   | {0, '', 0} when nothing applies.
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok or #groups == 0 then return {0, '', 0} end
local function split(id)
  local d = string.find(id, '-', 1, true)
  return string.sub(id, 1, d - 1), string.sub(id, d + 1)
end
local function numless(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function less(x, y)
  local xm, xs = split(x)
  local ym, ys = split(y)
  if xm ~= ym then return numless(xm, ym) end
  return numless(xs, ys)
end
local function inc(s)
  local d = {}
  for i = 1, #s do d[i] = string.byte(s, i) - 48 end
  local i = #d
  while i >= 1 do
    if d[i] < 9 then
      d[i] = d[i] + 1
      break
    end
    d[i] = 0
    i = i - 1
  end
  local r = table.concat(d)
  if i == 0 then r = '1' .. r end
  return r
end
local function successor(id)
  local m, q = split(id)
  if q == '18446744073709551615' then return inc(m) .. '-0' end
  return m .. '-' .. inc(q)
end
local minid = nil
for _, g in ipairs(groups) do
  local name, pending, last = nil, 0, nil
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] end
    if g[i] == 'pending' then pending = tonumber(g[i + 1]) end
    if g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  if name == nil or last == nil then return {0, '', 0} end
  local keep = successor(last)
  if pending > 0 then
    local p = redis.call('XPENDING', KEYS[1], name)
    if p[2] and less(p[2], keep) then keep = p[2] end
  end
  if minid == nil or less(keep, minid) then minid = keep end
end
local t = redis.call('TIME')
local cap_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[2])
local cap = string.format('%d', math.max(cap_ms, 0)) .. '-0'
local capped = 0
if less(cap, minid) then
  minid = cap
  capped = 1
end
local removed = redis.call('XTRIM', KEYS[1], 'MINID', '~', minid, 'LIMIT', ARGV[1])
local rest = redis.call('XRANGE', KEYS[1], '-', '(' .. minid, 'COUNT', 129)
if #rest > 0 and #rest <= 128 then
  removed = removed + redis.call('XTRIM', KEYS[1], 'MINID', minid)
end
return {removed, minid, capped}
