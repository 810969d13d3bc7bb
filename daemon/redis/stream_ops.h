// StreamOps: the typed asynchronous Redis operations of the delivery engine
// (Dispatcher and its parts). Callers speak stream operations — read a group,
// claim, ack, schedule a retry — never argv; the implementation
// (RedisStreamOps, redis_stream_ops.h) builds the commands, runs the Lua
// scripts of daemon/lua/ and turns replies into values and error replies into
// a Status with a kind (errors.h). Tests use tests/fakes/fake_stream_ops.h.
//
// Every callback runs later on the EventLoop thread, never inside the call;
// replies come in the order the calls were made (one connection). A Status is
// UNAVAILABLE when the connection is down or dropped before the reply (the
// command may or may not have run), or a Redis error (RedisErrorOf tells
// NOGROUP, WRONGTYPE, ...).
//
// Loop thread only.
#ifndef REDRIVE_DAEMON_REDIS_STREAM_OPS_H_
#define REDRIVE_DAEMON_REDIS_STREAM_OPS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/redis/script_results.h"
#include "daemon/stream_entry.h"

namespace redrive {

template <typename T>
using OpCallback = std::function<void(absl::StatusOr<T>)>;
using DoneCallback = std::function<void(absl::Status)>;

// A consumer group's view of one stream, and the consumer acting in it.
struct GroupRef {
  std::string stream;
  std::string group;
  std::string consumer;
};

// One member of a due zset with its score (milliseconds, Redis's clock).
struct DueEntry {
  std::string member;
  int64_t due_ms = 0;
};

// A consumer of a group as XINFO CONSUMERS reports it.
struct ConsumerInfo {
  std::string name;
  int64_t pending = 0;
  int64_t idle_ms = 0;
};

// schedule_retry.lua: hands entry `id` (pending under `owner.consumer`) to
// `scheduled_consumer` and adds `member` to `due_zset`, due after `delay`.
struct ScheduleRetryOp {
  GroupRef owner;
  std::string due_zset;
  std::string id;
  std::string scheduled_consumer;
  absl::Duration delay;
  std::string member;
};

// move_due.lua: appends `fields` to `retry_stream` (group `retry_group`)
// for the due `member`, acking entry `id` of `from` in the same step.
struct MoveDueOp {
  GroupRef from;  // consumer: the scheduled consumer
  std::string retry_stream;
  std::string retry_group;
  std::string due_zset;
  std::string id;
  std::string member;
  FieldList fields;
};

// dead_letter.lua: appends `fields` to `dlq_stream` and acks entry `id` of
// `from` (pending under `from.consumer`, or any consumer when empty).
struct DeadLetterOp {
  GroupRef from;
  std::string dlq_stream;
  std::string id;
  uint32_t max_len = 0;  // 0 = no cap
  bool hold_when_full = false;
  FieldList fields;
};

// trim_retry.lua's result.
struct TrimRetryResult {
  int64_t removed = 0;
  std::string min_id;
  bool more = false;  // the pass hit its limit, or entries wait for retention
};

class StreamOps {
 public:
  virtual ~StreamOps() = default;

  // XGROUP CREATE ... MKSTREAM at `start_id`; a group that exists is OK
  // (its position is kept).
  virtual void CreateGroup(const std::string& stream, const std::string& group,
                           const std::string& start_id, DoneCallback done) = 0;
  // XREADGROUP of up to `count` new entries of `g.stream` for `g.consumer`;
  // `no_ack` acknowledges them at read.
  virtual void ReadGroup(const GroupRef& g, uint32_t count, bool no_ack,
                         OpCallback<std::vector<StreamEntry>> done) = 0;
  // XCLAIM of `ids` idle at least `min_idle` to `g.consumer`, with their
  // fields (deleted entries come back with `deleted` set).
  virtual void Claim(const GroupRef& g, absl::Duration min_idle, std::vector<std::string> ids,
                     OpCallback<std::vector<StreamEntry>> done) = 0;
  // XRANGE id id: the entry, or nullopt when it is gone.
  virtual void ReadEntry(const std::string& stream, const std::string& id,
                         OpCallback<std::optional<StreamEntry>> done) = 0;
  // XACK of `ids` (done may be null).
  virtual void Ack(const std::string& stream, const std::string& group,
                   std::vector<std::string> ids, DoneCallback done) = 0;
  // Consumers of the group with pending entries (XPENDING summary); an empty
  // list when the group does not exist.
  virtual void PendingConsumers(const std::string& stream, const std::string& group,
                                OpCallback<std::vector<std::string>> done) = 0;
  // Ids pending under `g.consumer` idle at least `min_idle`, at most `count`.
  virtual void IdlePending(const GroupRef& g, absl::Duration min_idle, uint32_t count,
                           OpCallback<std::vector<std::string>> done) = 0;
  virtual void Consumers(const std::string& stream, const std::string& group,
                         OpCallback<std::vector<ConsumerInfo>> done) = 0;
  // delete_idle_consumer.lua: true when it was deleted (nothing pending).
  virtual void DeleteIdleConsumer(const std::string& stream, const std::string& group,
                                  const std::string& consumer, OpCallback<bool> done) = 0;
  // touch.lua: resets the idle time of `ids` still pending under
  // `g.consumer`, or with `release` sets it past every lease.
  virtual void Touch(const GroupRef& g, std::vector<std::string> ids, bool release,
                     DoneCallback done) = 0;

  // The earliest member of a due zset (nullopt when empty), and the first
  // `limit` members by due time.
  virtual void EarliestDue(const std::string& due_zset,
                           OpCallback<std::optional<DueEntry>> done) = 0;
  virtual void DueBatch(const std::string& due_zset, uint32_t limit,
                        OpCallback<std::vector<DueEntry>> done) = 0;
  virtual void RemoveDue(const std::string& due_zset, const std::string& member) = 0;

  virtual void ScheduleRetry(const ScheduleRetryOp& op, OpCallback<ScheduleRetryResult> done) = 0;
  virtual void MoveDue(const MoveDueOp& op, OpCallback<MoveDueResult> done) = 0;
  virtual void DeadLetter(const DeadLetterOp& op, OpCallback<DeadLetterResult> done) = 0;
  // trim_retry.lua on `retry_stream`.
  virtual void TrimRetry(const std::string& retry_stream, uint32_t limit, absl::Duration retention,
                         OpCallback<TrimRetryResult> done) = 0;

  // Fields of a hash (HGETALL) as name/value pairs; HEXISTS.
  virtual void HashFields(const std::string& key,
                          OpCallback<std::vector<std::pair<std::string, std::string>>> done) = 0;
  virtual void HashHas(const std::string& key, const std::string& field, OpCallback<bool> done) = 0;
  // HSET of `fields` (name/value pairs); HDEL of one field (done may be null).
  virtual void HashSet(const std::string& key,
                       std::vector<std::pair<std::string, std::string>> fields,
                       DoneCallback done) = 0;
  virtual void HashDelete(const std::string& key, const std::string& field, DoneCallback done) = 0;

  // Runs `done` after every reply to calls made before it (PING).
  virtual void Barrier(DoneCallback done) = 0;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_STREAM_OPS_H_
