#include "daemon/engine/dead_letterer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "daemon/logging.h"
#include "daemon/trace_context.h"

namespace redrive {
namespace {

std::string HeldKey(uint8_t source, const std::string& id) { return absl::StrCat(source, ":", id); }

}  // namespace

DeadLetterer::PerHandler* DeadLetterer::Find(const HandlerRef& ref) {
  auto it = handlers_.find(ref.generation);
  if (it == handlers_.end()) return nullptr;
  return &it->second;
}

void DeadLetterer::DeadLetterById(const HandlerRef& ref, const SpecPtr& spec, const Entry& entry,
                                  FailureRecord failure, std::string reason,
                                  absl::Duration held_retry) {
  // (A handler that already left is not tracked: the move goes on, nothing
  // here waits for it.)
  if (PerHandler* state = Find(ref)) state->held.insert(HeldKey(entry.source, entry.id));
  ctx_.tracker.Begin();
  ctx_.ops.ReadEntry(
      SourceRef(*spec, entry.source).stream, entry.id,
      guard_.Wrap([this, ref, spec, entry, failure = std::move(failure), reason = std::move(reason),
                   held_retry](absl::StatusOr<std::optional<StreamEntry>> read) {
        kLoopThread.AssertHeld();
        OnRead(ref, spec, entry, failure, reason, held_retry, std::move(read));
        ctx_.tracker.End();
      }));
}

void DeadLetterer::OnRead(const HandlerRef& ref, const SpecPtr& spec, const Entry& entry,
                          const FailureRecord& failure, const std::string& reason,
                          absl::Duration held_retry,
                          absl::StatusOr<std::optional<StreamEntry>> read) {
  // Until it has left (or was not ours), this daemon keeps trying: no sweep
  // may turn a TERMINATE into a retry meanwhile.
  auto finish = [this, ref, entry, failure, reason, held_retry](Outcome outcome) {
    kLoopThread.AssertHeld();
    PerHandler* state = Find(ref);
    if (state == nullptr) return;
    if (outcome == Outcome::kHeld || outcome == Outcome::kFailed) {
      const absl::Duration wait =
          outcome == Outcome::kHeld ? held_retry : 10 * ctx_.options.error_backoff;
      state->retries.push_back(Retry{entry, failure, reason, ctx_.now() + wait});
      ++waiting_;
    } else {
      state->held.erase(HeldKey(entry.source, entry.id));
    }
  };
  const GroupRef from = SourceRef(*spec, entry.source);
  if (!read.ok()) {
    ++ctx_.stats.redis_errors;
    LogWarn(LogFields()
                .Channel(spec->channel)
                .Handler(spec->handler_id)
                .EntryId(entry.id)
                .Reason(reason)
                .Error(read.status().message()),
            "reading an entry to dead-letter it failed");
    finish(Outcome::kFailed);
  } else if (!read->has_value()) {
    // Trimmed away: nothing left to keep; drop it from the PEL.
    LogWarn(LogFields()
                .Channel(spec->channel)
                .Handler(spec->handler_id)
                .EntryId(entry.id)
                .Reason(reason)
                .Stream(from.stream),
            "entry is gone from the stream; nothing to dead-letter");
    ctx_.ops.Ack(from.stream, from.group, {entry.id}, nullptr);
    finish(Outcome::kGone);
  } else {
    const StreamEntry& e = **read;
    DeadLetter(spec, entry.source, e, ReadRetryState(e), failure, reason, spec->consumer, finish);
  }
}

void DeadLetterer::DeadLetter(const SpecPtr& spec, uint8_t source, const StreamEntry& entry,
                              const absl::StatusOr<RetryState>& state, const FailureRecord& failure,
                              const std::string& reason, const std::string& owner, Done done) {
  DeadLetterOp op;
  op.from = SourceRef(*spec, source);
  op.from.consumer = owner;
  op.dlq_stream = spec->keys.dlq_stream;
  op.id = entry.id;
  op.max_len = spec->dead_letter_policy.max_len();
  op.hold_when_full = spec->dead_letter_policy.overflow() == v1::DeadLetterPolicy::OVERFLOW_HOLD;
  op.fields = DeadLetterFields(
      entry, state, failure,
      DeadLetterContext{reason, spec->channel, spec->handler_id, op.from.stream, ctx_.now()});
  ctx_.tracker.Begin();
  ctx_.ops.DeadLetter(
      op, guard_.Wrap([this, spec, source, id = entry.id, reason, attempts = failure.attempt,
                       traceparent = TraceparentOf(entry),
                       done = std::move(done)](absl::StatusOr<DeadLetterResult> r) {
        kLoopThread.AssertHeld();
        OnDeadLettered(spec, source, id, reason, attempts, traceparent, done, std::move(r));
        ctx_.tracker.End();
      }));
}

void DeadLetterer::OnDeadLettered(const SpecPtr& spec, uint8_t source, const std::string& id,
                                  const std::string& reason, uint32_t attempts,
                                  const std::string& traceparent, const Done& done,
                                  absl::StatusOr<DeadLetterResult> r) {
  Outcome outcome = Outcome::kGone;
  if (!r.ok()) {
    outcome = Outcome::kFailed;
    ++ctx_.stats.redis_errors;
    LogWarn(LogFields()
                .Channel(spec->channel)
                .Handler(spec->handler_id)
                .EntryId(id)
                .TraceId(TraceIdOf(traceparent))
                .Reason(reason)
                .Stream(SourceRef(*spec, source).stream)
                .Error(r.status().message()),
            "dead-lettering an entry failed");
  } else if (r->kind == DeadLetterResult::Kind::kDeadLettered) {
    outcome = Outcome::kMoved;
    ++ctx_.stats.dead_letters;
    spec->metrics->DeadLettered(reason);
    ctx_.summary.DeadLettered(spec->channel, spec->handler_id, reason);
    LogDebug(LogFields()
                 .Channel(spec->channel)
                 .Handler(spec->handler_id)
                 .EntryId(id)
                 .TraceId(TraceIdOf(traceparent))
                 .Reason(reason)
                 .Attempt(attempts)
                 .Stream(SourceRef(*spec, source).stream)
                 .DlqEntryId(r->dlq_id),
             "entry dead-lettered");
    if (r->evicted > 0) {
      ctx_.stats.dlq_evictions += static_cast<uint64_t>(r->evicted);
      spec->metrics->dlq_evictions.Add(static_cast<uint64_t>(r->evicted));
      LogWarn(LogFields()
                  .Channel(spec->channel)
                  .Handler(spec->handler_id)
                  .Stream(spec->keys.dlq_stream),
              "DLQ is at its cap of {}: evicted the {} oldest dead letters",
              spec->dead_letter_policy.max_len(), r->evicted);
    }
  } else if (r->kind == DeadLetterResult::Kind::kHeld) {
    outcome = Outcome::kHeld;
    ++ctx_.stats.dlq_held;
    LogWarn(LogFields()
                .Channel(spec->channel)
                .Handler(spec->handler_id)
                .EntryId(id)
                .TraceId(TraceIdOf(traceparent))
                .Reason(reason)
                .Stream(spec->keys.dlq_stream),
            "DLQ is full (cap {}, overflow hold): the entry stays pending and is tried again "
            "after a lease",
            spec->dead_letter_policy.max_len());
  } else {
    LogDebug(LogFields().Channel(spec->channel).Handler(spec->handler_id).EntryId(id),
             "entry was no longer ours to dead-letter");
  }
  if (done) done(outcome);
}

void DeadLetterer::RetryDue(const HandlerRef& ref, const SpecPtr& spec, absl::Time now,
                            absl::Duration held_retry) {
  PerHandler* state = Find(ref);
  if (state == nullptr || state->retries.empty()) return;
  auto split = std::stable_partition(state->retries.begin(), state->retries.end(),
                                     [&](const Retry& r) { return r.at > now; });
  std::vector<Retry> due(std::make_move_iterator(split),
                         std::make_move_iterator(state->retries.end()));
  state->retries.erase(split, state->retries.end());
  waiting_ -= due.size();
  for (Retry& r : due) {
    DeadLetterById(ref, spec, r.entry, std::move(r.failure), std::move(r.reason), held_retry);
  }
}

void DeadLetterer::AddHeld(const HandlerRef& ref, uint8_t source,
                           absl::flat_hash_set<std::string>& held) const {
  auto it = handlers_.find(ref.generation);
  if (it == handlers_.end()) return;
  const std::string prefix = HeldKey(source, "");
  for (const std::string& k : it->second.held) {
    if (k.rfind(prefix, 0) == 0) held.insert(k.substr(prefix.size()));
  }
}

}  // namespace redrive
