#include "daemon/engine/retry_scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/backoff.h"
#include "daemon/logging.h"
#include "daemon/trace_context.h"

namespace redrive {

RetryScheduler::RetryScheduler(EngineContext& ctx, DeadLetterer& dead_letters, Hooks hooks)
    : ctx_(ctx), dead_letters_(dead_letters), hooks_(std::move(hooks)) {
  unit_random_ = ctx_.options.unit_random;
  if (!unit_random_) {
    auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
    unit_random_ = [rng] { return std::uniform_real_distribution<double>(0.0, 1.0)(*rng); };
  }
}

void RetryScheduler::Add(const HandlerRef& ref) {
  // A new handler here looks for due retries (another daemon may have left
  // some) at once.
  movers_[ref.generation] = Mover{false, absl::InfinitePast()};
}

RetryScheduler::Mover* RetryScheduler::Find(const HandlerRef& ref) {
  auto it = movers_.find(ref.generation);
  if (it == movers_.end()) return nullptr;
  return &it->second;
}

void RetryScheduler::LookAgainBy(const HandlerRef& ref, absl::Time at) {
  if (Mover* m = Find(ref)) m->next_due = std::min(m->next_due, at);
}

FailureRecord RetryScheduler::MakeFailure(const SubscriptionSpec& spec, uint32_t attempt,
                                          FailKind kind, std::string error,
                                          std::string error_code) const {
  static constexpr const char* kOutcomes[] = {"nack", "lease_expired", "disconnected",
                                              "terminated"};
  FailureRecord f;
  f.attempt = attempt;
  f.outcome = kOutcomes[static_cast<int>(kind)];
  f.error = std::move(error);
  f.error_code = std::move(error_code);
  f.consumer = spec.consumer;
  f.at_ms = absl::ToUnixMillis(ctx_.now());
  return f;
}

void RetryScheduler::Poison(const SpecPtr& spec, uint8_t source, const StreamEntry& entry,
                            const absl::Status& why, FailKind kind) {
  ++ctx_.stats.poison;
  spec->metrics->poison.Add();
  LogDebug(LogFields()
               .Channel(spec->channel)
               .Handler(spec->handler_id)
               .EntryId(entry.id)
               .Reason("poison")
               .Stream(SourceRef(*spec, source).stream)
               .Error(why.message()),
           "entry is poison");
  FailureRecord f = MakeFailure(*spec, 1, kind, std::string(why.message()), "POISON");
  f.outcome = "poison";
  dead_letters_.DeadLetter(spec, source, entry, absl::StatusOr<RetryState>(why), f, "poison",
                           spec->consumer);
}

std::vector<std::string> RetryScheduler::Reclaimed(const HandlerRef& ref, const SpecPtr& spec,
                                                   uint8_t source, const std::string& consumer,
                                                   std::vector<StreamEntry> entries,
                                                   absl::Duration held_retry) {
  std::vector<std::string> deleted;
  for (StreamEntry& e : entries) {
    if (e.deleted) {
      deleted.push_back(std::move(e.id));
      continue;
    }
    ++ctx_.stats.reclaimed;
    absl::StatusOr<RetryState> state = ReadRetryState(e);
    if (!state.ok()) {
      Poison(spec, source, e, state.status(), FailKind::kExpired);
      continue;
    }
    const uint32_t attempt =
        static_cast<uint32_t>(std::min<int64_t>(state->retry_count + 1, UINT32_MAX));
    ctx_.summary.LeaseExpired(spec->channel, spec->handler_id);
    LogDebug(LogFields()
                 .Channel(spec->channel)
                 .Handler(spec->handler_id)
                 .EntryId(e.id)
                 .Reason("lease_expired")
                 .Attempt(attempt)
                 .Stream(SourceRef(*spec, source).stream)
                 .Consumer(consumer),
             "entry was idle past its lease: the attempt failed");
    Fail(ref, spec, Entry{e.id, attempt, source}, FailKind::kExpired,
         absl::StrCat("lease expired on consumer ", consumer), "LEASE_EXPIRED", std::nullopt,
         held_retry);
  }
  return deleted;
}

void RetryScheduler::Return(const HandlerRef& ref, const SpecPtr& spec,
                            const std::vector<Entry>& entries) {
  std::vector<std::string> ids[2];
  for (const Entry& e : entries) ids[e.source].push_back(e.id);
  for (uint8_t source : {kMain, kRetry}) Return(ref, spec, source, ids[source]);
}

void RetryScheduler::Fail(const HandlerRef& ref, const SpecPtr& spec, const Entry& entry,
                          FailKind kind, std::string error, std::string error_code,
                          std::optional<absl::Duration> delay, absl::Duration held_retry) {
  FailureRecord failure =
      MakeFailure(*spec, entry.attempt, kind, std::move(error), std::move(error_code));
  if (kind == FailKind::kTerminated) {
    dead_letters_.DeadLetterById(ref, spec, entry, std::move(failure), "terminated", held_retry);
    return;
  }
  if (RetriesExhausted(spec->retry_policy, entry.attempt)) {
    dead_letters_.DeadLetterById(ref, spec, entry, std::move(failure),
                                 kind == FailKind::kDisconnected ? "disconnected" : "max_retries",
                                 held_retry);
    return;
  }
  const absl::Duration wait =
      delay.has_value() ? *delay : RetryDelay(spec->retry_policy, entry.attempt, unit_random_());
  ++ctx_.stats.retries_scheduled;
  spec->metrics->retries_scheduled.Add();
  Schedule(ref, spec, entry.source, entry.id, std::move(failure), wait);
}

void RetryScheduler::Return(const HandlerRef& ref, const SpecPtr& spec, uint8_t source,
                            const std::vector<std::string>& ids) {
  for (const std::string& id : ids) {
    FailureRecord returned;
    returned.attempt = 0;
    returned.outcome = std::string(kReturnedOutcome);
    returned.consumer = spec->consumer;
    returned.at_ms = absl::ToUnixMillis(ctx_.now());
    ++ctx_.stats.returned;
    Schedule(ref, spec, source, id, std::move(returned), absl::ZeroDuration());
  }
}

void RetryScheduler::Schedule(const HandlerRef& ref, const SpecPtr& spec, uint8_t source,
                              const std::string& id, FailureRecord failure, absl::Duration delay) {
  ScheduleRetryOp op;
  op.owner = SourceRef(*spec, source);
  op.due_zset = spec->keys.due_zset;
  op.id = id;
  op.scheduled_consumer = ScheduledConsumerName(spec->handler_id);
  op.delay = delay;
  op.member = EncodeDueMember(DueMember{source, id, std::move(failure)});
  ctx_.tracker.Begin();
  ctx_.ops.ScheduleRetry(
      op, guard_.Wrap([this, ref, spec, source, id, now_due = delay <= absl::ZeroDuration()](
                          absl::StatusOr<ScheduleRetryResult> result) {
        kLoopThread.AssertHeld();
        if (!result.ok()) {
          // Still pending under our consumer: the sweep fails it again
          // once it has been idle for a lease.
          ++ctx_.stats.redis_errors;
          LogWarn(LogFields()
                      .Channel(spec->channel)
                      .Handler(spec->handler_id)
                      .EntryId(id)
                      .Error(result.status().message()),
                  "scheduling a retry failed");
          hooks_.schedule_failed(ref, source);
        } else if (result->kind == ScheduleRetryResult::Kind::kNotOwner) {
          LogDebug(LogFields().Channel(spec->channel).Handler(spec->handler_id).EntryId(id),
                   "entry was no longer ours to schedule");
        } else if (Find(ref) != nullptr) {
          // The due time is on Redis's clock; ours only decides when to
          // look (the move script refuses anything early).
          LookAgainBy(ref, result->due);
          // Due already (a disconnect, no backoff): move it now rather
          // than on the next tick.
          if (now_due && !hooks_.draining()) MoveDue(ref, spec);
        }
        ctx_.tracker.End();
      }));
}

void RetryScheduler::MaybeMove(const HandlerRef& ref, const SpecPtr& spec, absl::Time now) {
  Mover* m = Find(ref);
  if (m != nullptr && now >= m->next_due) MoveDue(ref, spec);
}

void RetryScheduler::MoveDue(const HandlerRef& ref, const SpecPtr& spec) {
  Mover* m = Find(ref);
  if (m == nullptr || m->moving) return;
  m->moving = true;
  const absl::Time now = ctx_.now();
  // Until told otherwise (a schedule here, a later member), look again within
  // a second while the zset holds anything (another daemon may have
  // scheduled those retries and died), after min_sweep when it is empty (an
  // idle handler costs one probe per sweep interval).
  m->next_due = now + ctx_.options.min_sweep;
  ctx_.tracker.Begin();
  // A cheap probe first (the earliest member only); the batch is read only
  // when something is due.
  ctx_.ops.EarliestDue(
      spec->keys.due_zset,
      guard_.Wrap([this, ref, spec, now](absl::StatusOr<std::optional<DueEntry>> first) {
        kLoopThread.AssertHeld();
        Mover* mm = Find(ref);
        if (mm == nullptr) {
          ctx_.tracker.End();
          return;
        }
        if (!first.ok()) {
          ++ctx_.stats.redis_errors;
          mm->moving = false;
          mm->next_due = std::min(mm->next_due, now + ctx_.options.error_backoff);
          ctx_.tracker.End();
          return;
        }
        if (first->has_value() && (*first)->due_ms <= absl::ToUnixMillis(now)) {
          MoveBatch(ref, spec, now);  // ends the op
          return;
        }
        if (first->has_value()) {
          mm->next_due = std::min({mm->next_due, absl::FromUnixMillis((*first)->due_ms),
                                   now + std::min(ctx_.options.min_sweep, absl::Seconds(1))});
        }
        mm->moving = false;
        ctx_.tracker.End();
      }));
}

void RetryScheduler::MoveBatch(const HandlerRef& ref, const SpecPtr& spec, absl::Time now) {
  const uint32_t limit = ctx_.options.move_batch;
  ctx_.ops.DueBatch(
      spec->keys.due_zset, limit + 1,
      guard_.Wrap([this, ref, spec, now, limit](absl::StatusOr<std::vector<DueEntry>> batch) {
        kLoopThread.AssertHeld();
        Mover* m = Find(ref);
        if (m == nullptr) {
          ctx_.tracker.End();
          return;
        }
        if (!batch.ok()) {
          ++ctx_.stats.redis_errors;
          m->moving = false;
          m->next_due = std::min(m->next_due, now + ctx_.options.error_backoff);
          ctx_.tracker.End();
          return;
        }
        if (!batch->empty()) {
          m->next_due =
              std::min(m->next_due, now + std::min(ctx_.options.min_sweep, absl::Seconds(1)));
        }
        std::vector<std::pair<DueMember, std::string>> due;
        for (const DueEntry& d : *batch) {
          if (d.due_ms > absl::ToUnixMillis(now)) {
            m->next_due = std::min(m->next_due, absl::FromUnixMillis(d.due_ms));
            break;
          }
          if (due.size() == limit) {
            m->next_due = now;  // more are due: go on next tick
            break;
          }
          absl::StatusOr<DueMember> member = DecodeDueMember(d.member);
          if (!member.ok()) {
            LogWarn(LogFields().Channel(spec->channel).Handler(spec->handler_id),
                    "due zset '{}' holds a member redrive did not write; removing it",
                    spec->keys.due_zset);
            ctx_.ops.RemoveDue(spec->keys.due_zset, d.member);
            continue;
          }
          due.emplace_back(*std::move(member), d.member);
        }
        if (due.empty()) {
          m->moving = false;
          ctx_.tracker.End();
          return;
        }
        auto remaining = std::make_shared<size_t>(due.size());
        auto finished = [this, ref, remaining] {
          kLoopThread.AssertHeld();
          if (--*remaining != 0) return;
          if (Mover* mm = Find(ref)) mm->moving = false;
          ctx_.tracker.End();
        };
        for (const auto& [member, raw] : due) MoveOne(ref, spec, member, raw, finished);
      }));
}

void RetryScheduler::MoveOne(const HandlerRef& ref, const SpecPtr& spec, const DueMember& member,
                             const std::string& raw, std::function<void()> done) {
  const uint8_t source = member.source == 1 ? kRetry : kMain;
  const GroupRef from = SourceRef(*spec, source);
  ctx_.ops.ReadEntry(from.stream, member.entry_id,
                     guard_.Wrap([this, ref, spec, from, member, raw, done = std::move(done)](
                                     absl::StatusOr<std::optional<StreamEntry>> read) {
                       kLoopThread.AssertHeld();
                       if (!read.ok()) {
                         ++ctx_.stats.redis_errors;
                         LookAgainBy(ref, ctx_.now() + ctx_.options.error_backoff);
                         done();
                         return;
                       }
                       if (!read->has_value()) {
                         // Trimmed while waiting: nothing to retry.
                         LogWarn(LogFields()
                                     .Channel(spec->channel)
                                     .Handler(spec->handler_id)
                                     .EntryId(member.entry_id)
                                     .Stream(from.stream),
                                 "entry is gone from the stream; its retry is dropped");
                         ctx_.ops.RemoveDue(spec->keys.due_zset, raw);
                         ctx_.ops.Ack(from.stream, from.group, {member.entry_id}, nullptr);
                         done();
                         return;
                       }
                       MoveFields(ref, spec, member, raw, **read, done);
                     }));
}

void RetryScheduler::MoveFields(const HandlerRef& ref, const SpecPtr& spec, const DueMember& member,
                                const std::string& raw, const StreamEntry& entry,
                                std::function<void()> done) {
  const uint8_t source = member.source == 1 ? kRetry : kMain;
  absl::StatusOr<RetryState> state = ReadRetryState(entry);
  absl::StatusOr<FieldList> fields = state.ok() ? RetryEntryFields(entry, *state, member.failure)
                                                : absl::StatusOr<FieldList>(state.status());
  const std::string scheduled = ScheduledConsumerName(spec->handler_id);
  if (!fields.ok()) {
    ++ctx_.stats.poison;
    spec->metrics->poison.Add();
    FailureRecord f = member.failure;
    f.outcome = "poison";
    f.error = std::string(fields.status().message());
    f.error_code = "POISON";
    dead_letters_.DeadLetter(
        spec, source, entry, state.ok() ? absl::StatusOr<RetryState>(fields.status()) : state, f,
        "poison", scheduled,
        [this, spec, raw, done = std::move(done)](DeadLetterer::Outcome outcome) {
          kLoopThread.AssertHeld();
          // Only once it really left: a held or failed move keeps its
          // member, so the next pass tries again.
          if (outcome == DeadLetterer::Outcome::kMoved) {
            ctx_.ops.RemoveDue(spec->keys.due_zset, raw);
          }
          done();
        });
    return;
  }
  MoveDueOp op;
  op.from = SourceRef(*spec, source);
  op.from.consumer = scheduled;
  op.retry_stream = spec->keys.retry_stream;
  op.retry_group = spec->keys.retry_group;
  op.due_zset = spec->keys.due_zset;
  op.id = member.entry_id;
  op.member = raw;
  op.fields = *std::move(fields);
  ctx_.ops.MoveDue(op, guard_.Wrap([this, ref, spec, source, id = member.entry_id,
                                    done = std::move(done)](absl::StatusOr<MoveDueResult> result) {
    kLoopThread.AssertHeld();
    if (!result.ok()) {
      ++ctx_.stats.redis_errors;
      LogWarn(LogFields()
                  .Channel(spec->channel)
                  .Handler(spec->handler_id)
                  .EntryId(id)
                  .Error(result.status().message()),
              "moving an entry to its retry stream failed");
      LookAgainBy(ref, ctx_.now() + ctx_.options.error_backoff);
    } else if (result->kind == MoveDueResult::Kind::kNotDue) {
      // Not due on Redis's clock yet (ours runs ahead).
      LookAgainBy(ref, ctx_.now() + ctx_.options.tick);
    } else if (result->kind == MoveDueResult::Kind::kMoved) {
      ++ctx_.stats.retries_moved;
      spec->metrics->retries_moved.Add();
      if (Find(ref) != nullptr) hooks_.moved(ref, source);
    }
    done();
  }));
}

}  // namespace redrive
