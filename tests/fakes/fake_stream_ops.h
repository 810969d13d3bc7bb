// FakeStreamOps: a programmable StreamOps for unit tests of the engine's
// parts. Each call is recorded as its op's record (stream_op_calls.h);
// calls<R>() returns them, oldest first.
// Answer<R>(fn) programs an op: fn(record) -> R::Reply. Unprogrammed, an op
// answers OK with a value-initialized result (no entries, nullopt, false;
// the scripts' kNotOwner, kGone, kNotPending, {0, "", false}). The answer is
// computed in the call and delivered LATER through EventLoop::Post, in call
// order. A null callback is recorded, not answered. Hold<R>() parks R's
// answers until Release<R>(); later answers of other ops overtake them, which
// a real connection never does, so hold only what the test reasons about.
// order() lists every call's record type, in call order. Loop thread only,
// like StreamOps: tests program and read it in RunSync.
#ifndef REDRIVE_TESTS_FAKES_FAKE_STREAM_OPS_H_
#define REDRIVE_TESTS_FAKES_FAKE_STREAM_OPS_H_

#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <typeinfo>
#include <vector>

#include "daemon/event_loop.h"
#include "daemon/redis/stream_ops.h"
#include "tests/fakes/stream_op_calls.h"

namespace redrive::testing {

// clang-format off
template <typename T> struct EmptyReply { static T Get() { return typename T::value_type{}; } };
template <> struct EmptyReply<absl::Status> {
  static absl::Status Get() { return absl::OkStatus(); } };

// The calls of one op so far, and its programmed answer (or none).
template <typename R> struct OpSlot { std::vector<R> calls;
                                      std::function<typename R::Reply(const R&)> answer;
                                      bool hold = false; std::vector<std::function<void()>> held; };
template <typename... R> using OpSlots = std::tuple<OpSlot<R>...>;
// clang-format on

class FakeStreamOps final : public StreamOps {
 public:
  explicit FakeStreamOps(EventLoop& loop) : loop_(loop) {}
  ~FakeStreamOps() override { *alive_ = false; }

  // clang-format off
  template <typename R> void Answer(std::function<typename R::Reply(const R&)> fn) {
    std::get<OpSlot<R>>(slots_).answer = std::move(fn); }
  template <typename R>
  const std::vector<R>& calls() const { return std::get<OpSlot<R>>(slots_).calls; }
  size_t in_transit() const { return in_transit_; }  // answers posted, not yet run
  template <typename R> void Hold() { std::get<OpSlot<R>>(slots_).hold = true; }
  template <typename R> size_t Release() {  // posts R's parked answers, oldest first
    OpSlot<R>& slot = std::get<OpSlot<R>>(slots_);
    slot.hold = false;
    std::vector<std::function<void()>> held = std::move(slot.held);
    slot.held.clear();
    for (auto& answer : held) Post(std::move(answer));
    return held.size(); }
  template <typename R> size_t held() const { return std::get<OpSlot<R>>(slots_).held.size(); }
  const std::vector<std::string>& order() const { return order_; }  // typeid(R).name() each

  void CreateGroup(const Str& stream, const Str& group, const Str& start_id, DoneCallback done)
      override { Record(CreateGroupCall{stream, group, start_id}, done); }
  void ReadGroup(const GroupRef& g, uint32_t count, bool no_ack, OpCallback<Entries> done)
      override { Record(ReadGroupCall{g, count, no_ack}, done); }
  void Claim(const GroupRef& g, absl::Duration min_idle, Ids ids, OpCallback<Entries> done)
      override { Record(ClaimCall{g, min_idle, ids}, done); }
  void ReadEntry(const Str& stream, const Str& id, OpCallback<std::optional<StreamEntry>> done)
      override { Record(ReadEntryCall{stream, id}, done); }
  void Ack(const Str& stream, const Str& group, Ids ids, DoneCallback done)
      override { Record(AckCall{stream, group, ids}, done); }
  void PendingConsumers(const Str& stream, const Str& group, OpCallback<Ids> done)
      override { Record(PendingConsumersCall{stream, group}, done); }
  void IdlePending(const GroupRef& g, absl::Duration min_idle, uint32_t count, OpCallback<Ids> done)
      override { Record(IdlePendingCall{g, min_idle, count}, done); }
  void Consumers(const Str& stream, const Str& group, OpCallback<std::vector<ConsumerInfo>> done)
      override { Record(ConsumersCall{stream, group}, done); }
  void DeleteIdleConsumer(const Str& stream, const Str& group, const Str& consumer,
      OpCallback<bool> done) override {
    Record(DeleteIdleConsumerCall{stream, group, consumer}, done); }
  void Touch(const GroupRef& g, Ids ids, bool release, DoneCallback done)
      override { Record(TouchCall{g, ids, release}, done); }
  void EarliestDue(const Str& due_zset, OpCallback<std::optional<DueEntry>> done)
      override { Record(EarliestDueCall{due_zset}, done); }
  void DueBatch(const Str& due_zset, uint32_t limit, OpCallback<std::vector<DueEntry>> done)
      override { Record(DueBatchCall{due_zset, limit}, done); }
  void RemoveDue(const Str& due_zset, const Str& member)
      override { Record(RemoveDueCall{due_zset, member}, DoneCallback()); }
  void ScheduleRetry(const ScheduleRetryOp& op, OpCallback<ScheduleRetryResult> done)
      override { Record(ScheduleRetryCall{op}, done); }
  void MoveDue(const MoveDueOp& op, OpCallback<MoveDueResult> done)
      override { Record(MoveDueCall{op}, done); }
  void DeadLetter(const DeadLetterOp& op, OpCallback<DeadLetterResult> done)
      override { Record(DeadLetterCall{op}, done); }
  void TrimRetry(const Str& retry_stream, uint32_t limit, absl::Duration retention,
      OpCallback<TrimRetryResult> done) override {
    Record(TrimRetryCall{retry_stream, limit, retention}, done); }
  void HashFields(const Str& key, OpCallback<HashPairs> done)
      override { Record(HashFieldsCall{key}, done); }
  void HashHas(const Str& key, const Str& field, OpCallback<bool> done)
      override { Record(HashHasCall{key, field}, done); }
  void HashSet(const Str& key, HashPairs fields, DoneCallback done)
      override { Record(HashSetCall{key, fields}, done); }
  void HashDelete(const Str& key, const Str& field, DoneCallback done)
      override { Record(HashDeleteCall{key, field}, done); }
  void Barrier(DoneCallback done) override { Record(BarrierCall{}, done); }

 private:
  template <typename R>
  void Record(R call, std::function<void(typename R::Reply)> done) {
    OpSlot<R>& slot = std::get<OpSlot<R>>(slots_);
    slot.calls.push_back(call);
    order_.push_back(typeid(R).name());
    if (!done) return;
    auto reply = slot.answer ? slot.answer(call) : EmptyReply<typename R::Reply>::Get();
    std::function<void()> answer = [done = std::move(done), reply = std::move(reply)]() mutable {
      done(std::move(reply)); };
    if (slot.hold) { slot.held.push_back(std::move(answer)); return; }
    Post(std::move(answer));
  }
  void Post(std::function<void()> answer) {
    ++in_transit_;
    loop_.Post([this, alive = alive_, answer = std::move(answer)] {
      if (*alive) --in_transit_;
      answer();
    });
  }

  EventLoop& loop_;
  const std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  OpSlots<CreateGroupCall, ReadGroupCall, ClaimCall, ReadEntryCall, AckCall, PendingConsumersCall,
      IdlePendingCall, ConsumersCall, DeleteIdleConsumerCall, TouchCall, EarliestDueCall,
      DueBatchCall, RemoveDueCall, ScheduleRetryCall, MoveDueCall, DeadLetterCall, TrimRetryCall,
      HashFieldsCall, HashHasCall, HashSetCall, HashDeleteCall, BarrierCall> slots_;
  std::vector<std::string> order_;
  size_t in_transit_ = 0;
  // clang-format on
};

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_FAKES_FAKE_STREAM_OPS_H_
