#include "daemon/redis/scripts.h"

#include <spdlog/spdlog.h>

#include <memory>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace redrive {

const LuaScript& ScheduleRetryScript() { return LuaScriptNamed("schedule_retry"); }
const LuaScript& MoveDueScript() { return LuaScriptNamed("move_due"); }
const LuaScript& DeadLetterScript() { return LuaScriptNamed("dead_letter"); }
const LuaScript& TouchScript() { return LuaScriptNamed("touch"); }
const LuaScript& DeleteIdleConsumerScript() { return LuaScriptNamed("delete_idle_consumer"); }
const LuaScript& TrimRetryScript() { return LuaScriptNamed("trim_retry"); }
const LuaScript& PurgeScript() { return LuaScriptNamed("purge"); }
const LuaScript& RedriveStepScript() { return LuaScriptNamed("redrive_step"); }
const LuaScript& JobTransitionScript() { return LuaScriptNamed("job_transition"); }
const LuaScript& LegacyMoveScript() { return LuaScriptNamed("legacy_move"); }
const LuaScript& DeleteHandlerScript() { return LuaScriptNamed("delete_handler"); }

void LoadScripts(AsyncCommander& redis) {
  for (const EmbeddedLua& script : EmbeddedLuaScripts()) {
    redis.Send({"SCRIPT", "LOAD", script.source},
               [name = std::string(script.name)](absl::StatusOr<RedisReply> r) {
                 if (!r.ok() || r->is_error()) {
                   spdlog::warn("loading Lua script {} failed: {}", name,
                                r.ok() ? r->str : std::string(r.status().message()));
                 }
               });
  }
}

void SendScript(AsyncCommander& redis, const LuaScript& script, std::vector<std::string> keys,
                std::vector<std::string> args, AsyncCallback done) {
  auto call = std::make_shared<
      std::tuple<std::vector<std::string>, std::vector<std::string>, AsyncCallback>>(
      std::move(keys), std::move(args), std::move(done));
  std::string numkeys;
  RedisArgv argv = EvalShaArgv(script, std::get<0>(*call), std::get<1>(*call), numkeys);
  redis.Send(argv, [&redis, &script, call](absl::StatusOr<RedisReply> r) {
    if (r.ok() && r->is_error() && absl::StartsWith(r->str, "NOSCRIPT")) {
      std::string n;
      RedisArgv eval = EvalShaArgv(script, std::get<0>(*call), std::get<1>(*call), n);
      eval[0] = "EVAL";
      eval[1] = script.source;
      redis.Send(eval,
                 [call](absl::StatusOr<RedisReply> r2) { std::get<2> (*call)(std::move(r2)); });
      return;
    }
    std::get<2> (*call)(std::move(r));
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
