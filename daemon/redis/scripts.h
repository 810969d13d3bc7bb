// The Lua scripts that move an entry between a handler's streams in one
// atomic Redis step (R-D4): the new entry is written and the old one
// acknowledged together, and only while the entry is still where the caller
// believes it is, so a crash neither loses nor duplicates and of two racing
// daemons exactly one wins. See docs/retries-design.md.
//
// The scripts are the files of daemon/lua/ (see lua_scripts.h). They run
// with EVALSHA; on NOSCRIPT (a restarted or flushed Redis) the source is sent
// with EVAL, which also caches it again.
//
// Thread-safe: immutable data and pure functions.
#ifndef REDRIVE_DAEMON_REDIS_SCRIPTS_H_
#define REDRIVE_DAEMON_REDIS_SCRIPTS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/redis/connection.h"
#include "daemon/redis/hiredis_async.h"
#include "daemon/redis/lua_scripts.h"

namespace redrive {

using LuaScript = EmbeddedLua;

// Each script's KEYS, ARGV and results are stated at the top of its file,
// daemon/lua/NAME.lua.

// schedule_retry: hands a failed entry to the scheduled consumer and adds it
// to the due zset on Redis's clock.
const LuaScript& ScheduleRetryScript();
// move_due: moves a due entry to the retry stream.
const LuaScript& MoveDueScript();
// dead_letter: appends an entry to the DLQ (capped: evict or hold) and acks
// the source.
const LuaScript& DeadLetterScript();
// touch: renews the leases of entries still pending under a consumer.
const LuaScript& TouchScript();
// delete_idle_consumer: deletes a consumer that has nothing pending.
const LuaScript& DeleteIdleConsumerScript();
// trim_retry: trims a retry stream of what every group acknowledged.
const LuaScript& TrimRetryScript();
// purge: deletes a DLQ whose length is the expected one.
const LuaScript& PurgeScript();
// redrive_step: one atomic step of a redrive job.
const LuaScript& RedriveStepScript();
// job_transition: heartbeat, finish, cancel, claim of a redrive job.
const LuaScript& JobTransitionScript();
// legacy_move: migrates one entry of a legacy shared retry stream.
const LuaScript& LegacyMoveScript();
// delete_handler: retires a handler's keys (Admin.DeleteHandler).
const LuaScript& DeleteHandlerScript();

// Sends SCRIPT LOAD for every embedded script on `redis`; run on every
// (re)connect of an async connection before it carries EVALSHAs. Without it
// the first EVALSHA of each script after a Redis start meets NOSCRIPT, and
// its EVAL goes out behind commands queued meanwhile, so two steps sent in
// one order could run in the other (dead letters of one batch landing out of
// order). Failures are logged; SendScript's EVAL fallback still applies.
void LoadScripts(AsyncCommander& redis);

// Sends `script` on an async connection with EVALSHA, falling back to EVAL on
// NOSCRIPT; `done` gets the final reply. `redis` must outlive the call.
void SendScript(AsyncCommander& redis, const LuaScript& script, std::vector<std::string> keys,
                std::vector<std::string> args, AsyncCallback done);

// EVALSHA argv for `script` (the views point into the arguments).
RedisArgv EvalShaArgv(const LuaScript& script, const std::vector<std::string>& keys,
                      const std::vector<std::string>& args, std::string& numkeys);

// Runs `script` on a synchronous connection, falling back to EVAL on
// NOSCRIPT. Redis error replies come back as INTERNAL/UNAVAILABLE statuses.
absl::StatusOr<RedisReply> RunScript(RedisCommander& redis, const LuaScript& script,
                                     const std::vector<std::string>& keys,
                                     const std::vector<std::string>& args);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_SCRIPTS_H_
