// The Lua scripts that move an entry between a handler's streams in one
// atomic Redis step (R-D4): the new entry is written and the old one
// acknowledged together, and only while the entry is still where the caller
// believes it is, so a crash neither loses nor duplicates and of two racing
// daemons exactly one wins. See docs/retries-design.md.
//
// Scripts run with EVALSHA; on NOSCRIPT (a restarted or flushed Redis) the
// source is sent with EVAL, which also caches it again.
//
// Thread-safe: immutable data and pure functions.
#ifndef REDRIVE_DAEMON_MOVE_SCRIPTS_H_
#define REDRIVE_DAEMON_MOVE_SCRIPTS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/async_redis.h"
#include "daemon/redis_client.h"

namespace redrive {

struct LuaScript {
  std::string name;
  std::string source;
  std::string sha1;  // hex, of `source`
};

// Schedules a failed entry for a later retry.
//   KEYS: source stream, due zset
//   ARGV: group, entry id, owner consumer, scheduled consumer, delay (ms),
//         member
// If the entry is pending in `group` under `owner`: hands it to the
// scheduled consumer (so lease sweeps leave it alone while it waits), adds
// `member` to the due zset with score = Redis's TIME in ms + delay, and
// returns that due time; else returns 0 and changes nothing.
const LuaScript& ScheduleRetryScript();

// Moves a due entry to the retry stream.
//   KEYS: source stream, retry stream, due zset
//   ARGV: source group, entry id, member, retry group, scheduled consumer,
//         field, value, ...
// Returns the new retry entry id; 0 when `member` is no longer in the zset
// (another daemon moved it); -3 when it is not due yet on Redis's clock
// (nothing changes); -1 when the entry is no longer pending under the
// scheduled consumer (settled, or taken back by its owner): the member is
// dropped and nothing else changes. The member is removed last, so an error
// in between leaves it to be tried again. The retry group is created at the
// stream's end when missing, so the new entry is the next one it reads.
const LuaScript& MoveDueScript();

// Dead-letters an entry.
//   KEYS: source stream, dead-letter stream
//   ARGV: group, entry id, owner consumer ("" = any owner), cap (max DLQ
//         length, "0" = none), overflow ("evict" | "hold"), field, value, ...
// Returns {DLQ entry id, entries evicted}; 0 when the entry is not pending
// (under `owner`); -2 when the DLQ is at its cap and the overflow is "hold"
// (nothing changes). With "evict", the oldest dead letters are trimmed
// (exact MAXLEN cap - 1) before the new one is added.
const LuaScript& DeadLetterScript();

// Resets the idle time of entries (or sets it to `idle`), but only of those
// still pending under `consumer`: an entry another daemon's sweep took, or
// that waits for its retry, is left alone.
//   KEYS: stream   ARGV: group, consumer, idle ms ("" = reset), id, ...
// Returns how many were touched.
const LuaScript& TouchScript();

// Removes a consumer from a group only while it has no pending entries.
//   KEYS: stream   ARGV: group, consumer
// Returns 1 when deleted, 0 otherwise.
const LuaScript& DeleteIdleConsumerScript();

// Trims a retry stream of the entries every group has acknowledged (issue
// 10: retry streams grew for ever). Only entries below MINID go, where MINID
// is the smallest, over every group of the stream, of the group's lowest
// pending id (XPENDING summary) and the successor of its last-delivered id:
// no entry still pending in, or not yet read by, any group is ever removed.
// Nor is any entry younger than `retention` ms on Redis's clock (MINID is at
// most "{now - retention}-0"), so recent retries stay for inspection.
// No group at all (or no stream): nothing is removed.
//   KEYS: retry stream
//   ARGV: limit (most entries the first pass removes), retention ms
// Cost is bounded: a first `XTRIM MINID ~ LIMIT limit` pass frees whole
// stream nodes; only when at most 128 entries below MINID remain after it
// (the rest of one node) does an exact `XTRIM MINID` remove them too.
// Returns {entries removed, MINID, capped}: capped is 1 when the retention
// (not the groups) set MINID, so acknowledged entries remain that a later
// call removes ({0, "", 0} when nothing applies).
const LuaScript& TrimRetryScript();

// Deletes a dead-letter stream only while its length is the expected one.
//   KEYS: dlq   ARGV: expected count
// Returns the count deleted, or {-1, actual length} (nothing changes).
const LuaScript& PurgeScript();

// One step of a redrive job (R-E2): processes the job's ids number
// cursor .. cursor + count - 1 in one atomic step, only while the job is
// RUNNING, owned by the caller and at that cursor, so a job taken over or
// cancelled stops and no id is processed twice.
//   KEYS: job hash, dlq, target stream
//   ARGV: owner, cursor, target group ("" = none), count, then per id:
//         entry id, action ("move" | "skipped" | "failed"), field count
//         (2 x pairs), field, value, ...
// "move": if the dead letter still exists, appends its fields to the target
// (creating the target group at its end when missing), deletes the dead
// letter and counts it moved — else counts it skipped; the other actions
// only count; an XADD that fails counts the entry failed and leaves it in
// the DLQ. The cursor advances by count. Returns {moved, skipped, failed},
// -1 (not RUNNING or not the owner), -2 (the cursor is elsewhere) or -3 (the
// target key is not a stream; nothing changes).
const LuaScript& RedriveStepScript();

// Redrive job state changes, on Redis's clock.
//   KEYS: job hash, job ids list
//   ARGV: op, owner, arg, error, expire ms
//   heartbeat: owner's heartbeat (1, or 0 when not the running owner);
//   finish: state := arg (SUCCEEDED | FAILED) with `error`, keys expire;
//   cancel: PENDING/RUNNING → CANCELLED (0 when already ended);
//   claim: takes a RUNNING job whose heartbeat is older than arg ms (1/0).
// -1 when the job does not exist.
const LuaScript& JobTransitionScript();

// Migrates one entry of a legacy shared `{channel}.retry` stream (R-E6) into
// a handler's retry stream.
//   KEYS: legacy stream, target retry stream
//   ARGV: legacy group, entry id, target group, kind ("pending" | "unread"),
//         expected last-delivered id (unread), field, value, ...
// pending: only while the entry is pending in the group; XADD + XACK.
// unread: only while the group's last-delivered id is the expected one;
// XADD + XGROUP SETID to the entry. Returns the new id, or 0 (nothing done).
const LuaScript& LegacyMoveScript();

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

// Lower-case hex SHA-1, as Redis names scripts.
std::string Sha1Hex(absl::string_view data);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_MOVE_SCRIPTS_H_
