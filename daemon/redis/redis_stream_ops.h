// RedisStreamOps: StreamOps (stream_ops.h) over one AsyncCommander. Each
// operation builds its command (or runs its daemon/lua/ script through
// SendScript, EVALSHA with the EVAL fallback), and hands its callback the
// decoded value: an error reply becomes its Status through errors.h
// (RedisErrorOf tells the kind), a reply of an unexpected shape is INTERNAL
// with the command (or script) named in the message, a transport failure
// stays the commander's UNAVAILABLE.
//
// Beyond the StreamOps contract:
//   - Durations go to Redis in whole milliseconds; a negative one is 0.
//   - An empty id list (Claim, Ack, Touch) or field list (HashSet) is not
//     sent as a command Redis would refuse: the empty result is answered
//     behind a PING, so it still comes later and in call order.
//   - Every DoneCallback may be null (the header allows it for Ack, HashSet
//     and HashDelete; here it holds for all of them).
//   - TrimRetryResult.more is true when the pass removed anything (it may
//     have stopped at its limit) or the retention capped it, the rule the
//     dispatcher applied to trim_retry.lua's reply before StreamOps.
//
// Loop thread only, like the AsyncCommander it drives.
#ifndef REDRIVE_DAEMON_REDIS_REDIS_STREAM_OPS_H_
#define REDRIVE_DAEMON_REDIS_REDIS_STREAM_OPS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/redis/commander.h"
#include "daemon/redis/stream_ops.h"

namespace redrive {

class RedisStreamOps final : public StreamOps {
 public:
  // `redis` must outlive this object and every reply still on its way.
  explicit RedisStreamOps(AsyncCommander& redis) : redis_(redis) {}
  RedisStreamOps(const RedisStreamOps&) = delete;
  RedisStreamOps& operator=(const RedisStreamOps&) = delete;

  void CreateGroup(const std::string& stream, const std::string& group, const std::string& start_id,
                   DoneCallback done) override;
  void ReadGroup(const GroupRef& g, uint32_t count, bool no_ack,
                 OpCallback<std::vector<StreamEntry>> done) override;
  void Claim(const GroupRef& g, absl::Duration min_idle, std::vector<std::string> ids,
             OpCallback<std::vector<StreamEntry>> done) override;
  void ReadEntry(const std::string& stream, const std::string& id,
                 OpCallback<std::optional<StreamEntry>> done) override;
  void Ack(const std::string& stream, const std::string& group, std::vector<std::string> ids,
           DoneCallback done) override;
  void PendingConsumers(const std::string& stream, const std::string& group,
                        OpCallback<std::vector<std::string>> done) override;
  void IdlePending(const GroupRef& g, absl::Duration min_idle, uint32_t count,
                   OpCallback<std::vector<std::string>> done) override;
  void Consumers(const std::string& stream, const std::string& group,
                 OpCallback<std::vector<ConsumerInfo>> done) override;
  void DeleteIdleConsumer(const std::string& stream, const std::string& group,
                          const std::string& consumer, OpCallback<bool> done) override;
  void Touch(const GroupRef& g, std::vector<std::string> ids, bool release,
             DoneCallback done) override;

  void EarliestDue(const std::string& due_zset, OpCallback<std::optional<DueEntry>> done) override;
  void DueBatch(const std::string& due_zset, uint32_t limit,
                OpCallback<std::vector<DueEntry>> done) override;
  void RemoveDue(const std::string& due_zset, const std::string& member) override;

  void ScheduleRetry(const ScheduleRetryOp& op, OpCallback<ScheduleRetryResult> done) override;
  void MoveDue(const MoveDueOp& op, OpCallback<MoveDueResult> done) override;
  void DeadLetter(const DeadLetterOp& op, OpCallback<DeadLetterResult> done) override;
  void TrimRetry(const std::string& retry_stream, uint32_t limit, absl::Duration retention,
                 OpCallback<TrimRetryResult> done) override;

  void HashFields(const std::string& key,
                  OpCallback<std::vector<std::pair<std::string, std::string>>> done) override;
  void HashHas(const std::string& key, const std::string& field, OpCallback<bool> done) override;
  void HashSet(const std::string& key, std::vector<std::pair<std::string, std::string>> fields,
               DoneCallback done) override;
  void HashDelete(const std::string& key, const std::string& field, DoneCallback done) override;

  void Barrier(DoneCallback done) override;

 private:
  // Answers `done` with `value` behind a PING (nothing to ask Redis).
  template <typename T>
  void AnswerInOrder(T value, OpCallback<T> done);
  void AnswerInOrder(DoneCallback done);

  AsyncCommander& redis_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_REDIS_STREAM_OPS_H_
