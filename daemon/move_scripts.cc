#include "daemon/move_scripts.h"

#include <openssl/evp.h>

#include <memory>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace redrive {
namespace {

LuaScript MakeScript(std::string name, std::string source) {
  LuaScript s{std::move(name), std::move(source), ""};
  s.sha1 = Sha1Hex(s.source);
  return s;
}

// Redis's clock, in ms: every due time is set and compared on it, so clock
// skew between daemons cannot make a retry early.
#define REDRIVE_LUA_NOW_MS \
  "local t = redis.call('TIME')\n" \
  "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

constexpr char kScheduleRetry[] = R"lua(
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
)lua" REDRIVE_LUA_NOW_MS R"lua(
local due = now + tonumber(ARGV[5])
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[4], 0, ARGV[2], 'JUSTID')
redis.call('ZADD', KEYS[2], due, ARGV[6])
return due
)lua";

constexpr char kMoveDue[] = R"lua(
local score = redis.call('ZSCORE', KEYS[3], ARGV[3])
if not score then return 0 end
)lua" REDRIVE_LUA_NOW_MS R"lua(
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
)lua";

#undef REDRIVE_LUA_NOW_MS

// Ids compare as (ms, seq) pairs of unbounded decimal strings (no leading
// zeros), so seq values past 2^53 compare and increment exactly.
constexpr char kTrimRetry[] = R"lua(
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
)lua";



constexpr char kDeadLetter[] = R"lua(
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
)lua";

constexpr char kTouch[] = R"lua(
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
)lua";

constexpr char kDeleteIdleConsumer[] = R"lua(
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
)lua";

constexpr char kPurge[] = R"lua(
local n = redis.call('XLEN', KEYS[1])
if n ~= tonumber(ARGV[1]) then return {-1, n} end
redis.call('DEL', KEYS[1])
return n
)lua";

// Job hash fields: state, owner, cursor, moved, skipped, failed, heartbeat_ms,
// updated_ms.
constexpr char kRedriveStep[] = R"lua(
if redis.call('HGET', KEYS[1], 'state') ~= 'RUNNING' then return -1 end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[1], 'cursor') ~= ARGV[2] then return -2 end
local kind = redis.call('TYPE', KEYS[3])['ok']
if kind ~= 'none' and kind ~= 'stream' then return -3 end
local n = tonumber(ARGV[4])
local moved, skipped, failed = 0, 0, 0
local created = false
local pos = 5
for _ = 1, n do
  local id, action, nf = ARGV[pos], ARGV[pos + 1], tonumber(ARGV[pos + 2])
  local first, last = pos + 3, pos + 2 + nf
  if action == 'move' then
    if #redis.call('XRANGE', KEYS[2], id, id) == 1 and nf > 0 then
      if ARGV[3] ~= '' and not created then
        redis.pcall('XGROUP', 'CREATE', KEYS[3], ARGV[3], '$', 'MKSTREAM')
        created = true
      end
      local added = redis.pcall('XADD', KEYS[3], '*', unpack(ARGV, first, last))
      if type(added) == 'table' and added['err'] then
        failed = failed + 1
      else
        redis.call('XDEL', KEYS[2], id)
        moved = moved + 1
      end
    else
      skipped = skipped + 1
    end
  elseif action == 'skipped' then
    skipped = skipped + 1
  else
    failed = failed + 1
  end
  pos = last + 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'cursor', tonumber(ARGV[2]) + n, 'updated_ms', now,
           'heartbeat_ms', now)
redis.call('HINCRBY', KEYS[1], 'moved', moved)
redis.call('HINCRBY', KEYS[1], 'skipped', skipped)
redis.call('HINCRBY', KEYS[1], 'failed', failed)
return {moved, skipped, failed}
)lua";

constexpr char kJobTransition[] = R"lua(
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
elseif op == 'claim' then
  if state ~= 'RUNNING' then return 0 end
  local hb = tonumber(redis.call('HGET', KEYS[1], 'heartbeat_ms') or '0')
  if hb + tonumber(ARGV[3]) > now then return 0 end
  redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'heartbeat_ms', now, 'updated_ms', now)
  redis.call('HINCRBY', KEYS[1], 'resumed', 1)
  return 1
end
return redis.error_reply('ERR unknown job transition')
)lua";

// Legacy (pre-#226) migration of one entry into a handler's retry stream.
constexpr char kLegacyMove[] = R"lua(
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
)lua";

}  // namespace

const LuaScript& PurgeScript() {
  static const auto* script = new LuaScript(MakeScript("purge", kPurge));
  return *script;
}

const LuaScript& RedriveStepScript() {
  static const auto* script = new LuaScript(MakeScript("redrive_step", kRedriveStep));
  return *script;
}

const LuaScript& JobTransitionScript() {
  static const auto* script = new LuaScript(MakeScript("job_transition", kJobTransition));
  return *script;
}

const LuaScript& LegacyMoveScript() {
  static const auto* script = new LuaScript(MakeScript("legacy_move", kLegacyMove));
  return *script;
}

std::string Sha1Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha1(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) absl::StrAppendFormat(&hex, "%02x", digest[i]);
  return hex;
}

const LuaScript& ScheduleRetryScript() {
  static const auto* script = new LuaScript(MakeScript("schedule_retry", kScheduleRetry));
  return *script;
}

const LuaScript& MoveDueScript() {
  static const auto* script = new LuaScript(MakeScript("move_due", kMoveDue));
  return *script;
}

const LuaScript& DeadLetterScript() {
  static const auto* script = new LuaScript(MakeScript("dead_letter", kDeadLetter));
  return *script;
}

const LuaScript& TouchScript() {
  static const auto* script = new LuaScript(MakeScript("touch", kTouch));
  return *script;
}

const LuaScript& TrimRetryScript() {
  static const auto* script = new LuaScript(MakeScript("trim_retry", kTrimRetry));
  return *script;
}

const LuaScript& DeleteIdleConsumerScript() {
  static const auto* script =
      new LuaScript(MakeScript("delete_idle_consumer", kDeleteIdleConsumer));
  return *script;
}

void SendScript(AsyncCommander& redis, const LuaScript& script, std::vector<std::string> keys,
                std::vector<std::string> args, AsyncCallback done) {
  auto call = std::make_shared<std::tuple<std::vector<std::string>, std::vector<std::string>,
                                          AsyncCallback>>(std::move(keys), std::move(args),
                                                          std::move(done));
  std::string numkeys;
  RedisArgv argv = EvalShaArgv(script, std::get<0>(*call), std::get<1>(*call), numkeys);
  redis.Send(argv, [&redis, &script, call](absl::StatusOr<RedisReply> r) {
    if (r.ok() && r->is_error() && absl::StartsWith(r->str, "NOSCRIPT")) {
      std::string n;
      RedisArgv eval = EvalShaArgv(script, std::get<0>(*call), std::get<1>(*call), n);
      eval[0] = "EVAL";
      eval[1] = script.source;
      redis.Send(eval, [call](absl::StatusOr<RedisReply> r2) { std::get<2>(*call)(std::move(r2)); });
      return;
    }
    std::get<2>(*call)(std::move(r));
  });
}

RedisArgv EvalShaArgv(const LuaScript& script, const std::vector<std::string>& keys,
                      const std::vector<std::string>& args, std::string& numkeys) {
  numkeys = absl::StrCat(keys.size());
  RedisArgv argv = {"EVALSHA", script.sha1, numkeys};
  argv.reserve(3 + keys.size() + args.size());
  for (const std::string& k : keys) argv.push_back(k);
  for (const std::string& a : args) argv.push_back(a);
  return argv;
}

absl::StatusOr<RedisReply> RunScript(RedisCommander& redis, const LuaScript& script,
                                     const std::vector<std::string>& keys,
                                     const std::vector<std::string>& args) {
  std::string numkeys;
  RedisArgv argv = EvalShaArgv(script, keys, args, numkeys);
  absl::StatusOr<RedisReply> reply = redis.Command(argv);
  if (reply.ok() && reply->is_error() && absl::StartsWith(reply->str, "NOSCRIPT")) {
    argv[0] = "EVAL";
    argv[1] = script.source;
    reply = redis.Command(argv);
  }
  if (!reply.ok()) return reply.status();
  if (reply->is_error()) {
    return absl::Status(reply->ErrorStatus().code(),
                        absl::StrCat("script ", script.name, ": ", reply->str));
  }
  return reply;
}

}  // namespace redrive
