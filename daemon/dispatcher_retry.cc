// Dispatcher, part two: failed attempts, the due-retry mover, dead letters
// and sweeps (R-B7, R-D1..R-D9). See dispatcher.h and docs/retries-design.md.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "daemon/backoff.h"
#include "daemon/dispatcher.h"
#include "daemon/redis/scripts.h"
#include "daemon/redis/script_results.h"

namespace redrive {
namespace {

const std::string& SourceStream(const SubscriptionSpec& spec, uint8_t source) {
  return source == 0 ? spec.keys.stream : spec.keys.retry_stream;
}

const std::string& SourceGroup(const SubscriptionSpec& spec, uint8_t source) {
  return source == 0 ? spec.keys.group : spec.keys.retry_group;
}

std::string ReplyText(const absl::StatusOr<RedisReply>& r) {
  if (!r.ok()) return std::string(r.status().message());
  return r->is_error() ? r->str : r->DebugString();
}

bool IsScriptError(const absl::StatusOr<RedisReply>& r) { return !r.ok() || r->is_error(); }

// A script's reply through its decoder (script_results.h); a transport or
// Redis error becomes the status.
template <typename Decoder>
auto Decode(const absl::StatusOr<RedisReply>& r, Decoder decode) -> decltype(decode(*r)) {
  if (IsScriptError(r)) return absl::UnavailableError(ReplyText(r));
  return decode(*r);
}

}  // namespace

FailureRecord Dispatcher::MakeFailure(const Handler& h, uint32_t attempt, FailKind kind,
                                      std::string error, std::string error_code) const {
  FailureRecord f;
  f.attempt = attempt;
  switch (kind) {
    case FailKind::kNack:
      f.outcome = "nack";
      break;
    case FailKind::kExpired:
      f.outcome = "lease_expired";
      break;
    case FailKind::kDisconnected:
      f.outcome = "disconnected";
      break;
    case FailKind::kTerminated:
      f.outcome = "terminated";
      break;
  }
  f.error = std::move(error);
  f.error_code = std::move(error_code);
  f.consumer = h.spec.consumer;
  f.at_ms = absl::ToUnixMillis(options_.now());
  return f;
}

void Dispatcher::Fail(Handler& h, const Entry& entry, FailKind kind, std::string error,
                      std::string error_code, std::optional<absl::Duration> delay) {
  FailureRecord failure =
      MakeFailure(h, entry.attempt, kind, std::move(error), std::move(error_code));
  if (entry.source == kRetry) h.sources[kRetry].trim_wanted = true;
  if (kind == FailKind::kTerminated) {
    DeadLetterById(h, entry, std::move(failure), "terminated");
    return;
  }
  if (RetriesExhausted(h.spec.retry_policy, entry.attempt)) {
    DeadLetterById(h, entry, std::move(failure),
                   kind == FailKind::kDisconnected ? "disconnected" : "max_retries");
    return;
  }
  const absl::Duration wait =
      delay.has_value() ? *delay : RetryDelay(h.spec.retry_policy, entry.attempt, unit_random_());
  ++stats_.retries_scheduled;
  Schedule(h.names, HandlerRef{h.key, h.generation}, entry.source, entry.id, std::move(failure),
           wait);
}

void Dispatcher::Return(const std::shared_ptr<const SubscriptionSpec>& spec, const HandlerRef& key,
                        uint8_t source, const std::vector<std::string>& ids) {
  for (const std::string& id : ids) {
    FailureRecord returned;
    returned.attempt = 0;
    returned.outcome = std::string(kReturnedOutcome);
    returned.consumer = spec->consumer;
    returned.at_ms = absl::ToUnixMillis(options_.now());
    ++stats_.returned;
    Schedule(spec, key, source, id, std::move(returned), absl::ZeroDuration());
  }
}

void Dispatcher::Schedule(const std::shared_ptr<const SubscriptionSpec>& spec,
                          const HandlerRef& key, uint8_t source, const std::string& id,
                          FailureRecord failure, absl::Duration delay) {
  std::string member = EncodeDueMember(DueMember{source, id, std::move(failure)});
  BeginOp();
  SendScript(redis_, ScheduleRetryScript(), {SourceStream(*spec, source), spec->keys.due_zset},
             {SourceGroup(*spec, source), id, spec->consumer,
              ScheduledConsumerName(spec->handler_id),
              absl::StrCat(absl::ToInt64Milliseconds(delay)), std::move(member)},
             Guard([this, key, source, id, now_due = delay <= absl::ZeroDuration()](
                       absl::StatusOr<RedisReply> r) {
               Handler* hh = FindHandler(key);
               absl::StatusOr<ScheduleRetryResult> result = Decode(r, DecodeScheduleRetry);
               if (!result.ok()) {
                 // Still pending under our consumer: the sweep fails it
                 // again once it has been idle for a lease.
                 ++stats_.redis_errors;
                 spdlog::warn("scheduling the retry of entry {} failed: {}", id,
                              std::string(result.status().message()));
                 if (hh != nullptr) {
                   Source& s = hh->sources[source];
                   s.next_sweep = std::min(s.next_sweep, options_.now() + hh->spec.lease);
                 }
               } else if (result->kind == ScheduleRetryResult::Kind::kNotOwner) {
                 spdlog::debug("entry {} was no longer ours to schedule", id);
               } else if (hh != nullptr) {
                 // The due time is on Redis's clock; ours only decides when
                 // to look (the move script refuses anything early).
                 hh->next_due = std::min(hh->next_due, result->due);
                 // Due already (a disconnect, no backoff): move it now
                 // rather than on the next tick.
                 if (now_due && !draining_) MoveDue(*hh);
               }
               EndOp();
             }));
}

void Dispatcher::DeadLetterById(Handler& h, const Entry& entry, FailureRecord failure,
                                std::string reason) {
  const Source& src = h.sources[entry.source];
  h.dead_lettering.insert(DeadKey(entry.source, entry.id));
  BeginOp();
  redis_.Send(
      {"XRANGE", src.stream, entry.id, entry.id},
      Guard([this, key = HandlerRef{h.key, h.generation}, spec = h.names, entry,
             failure = std::move(failure), reason = std::move(reason)](
                absl::StatusOr<RedisReply> r) {
        const uint8_t source = entry.source;
        const std::string& id = entry.id;
        // Until it has left (or was not ours), this daemon keeps trying:
        // no sweep may turn a TERMINATE into a retry meanwhile.
        auto finish = [this, key, entry, failure, reason](DeadOutcome outcome) {
          Handler* hh = FindHandler(key);
          if (hh == nullptr) return;
          if (outcome == DeadOutcome::kHeld || outcome == DeadOutcome::kFailed) {
            const absl::Duration wait =
                outcome == DeadOutcome::kHeld ? SweepPeriod(*hh) : 10 * options_.error_backoff;
            hh->dead_retry.push_back(DeadRetry{entry, failure, reason, options_.now() + wait});
          } else {
            hh->dead_lettering.erase(DeadKey(entry.source, entry.id));
          }
        };
        absl::StatusOr<std::vector<StreamEntry>> entries =
            r.ok() && !r->is_error() ? ParseEntryList(*std::move(r))
                                     : absl::StatusOr<std::vector<StreamEntry>>(
                                           absl::UnavailableError(ReplyText(r)));
        if (!entries.ok()) {
          ++stats_.redis_errors;
          spdlog::warn("reading entry {} to dead-letter it failed: {}", id,
                       std::string(entries.status().message()));
          finish(DeadOutcome::kFailed);
        } else if (entries->empty()) {
          // Trimmed away: nothing left to keep; drop it from the PEL.
          spdlog::warn("entry {} of '{}' is gone from the stream; nothing to dead-letter", id,
                       SourceStream(*spec, source));
          redis_.Send({"XACK", SourceStream(*spec, source), SourceGroup(*spec, source), id},
                      [](absl::StatusOr<RedisReply>) {});
          finish(DeadOutcome::kGone);
        } else {
          const StreamEntry& e = entries->front();
          DeadLetter(spec, source, e, ReadRetryState(e), failure, reason, spec->consumer, finish);
        }
        EndOp();
      }));
}

void Dispatcher::DeadLetter(const std::shared_ptr<const SubscriptionSpec>& spec, uint8_t source,
                            const StreamEntry& entry, const absl::StatusOr<RetryState>& state,
                            const FailureRecord& failure, const std::string& reason,
                            const std::string& owner, std::function<void(DeadOutcome)> done) {
  const std::string& stream = SourceStream(*spec, source);
  DeadLetterContext context{reason, spec->channel, spec->handler_id, stream, options_.now()};
  FieldList fields = DeadLetterFields(entry, state, failure, context);
  const v1::DeadLetterPolicy& policy = spec->dead_letter_policy;
  std::vector<std::string> args = {
      SourceGroup(*spec, source), entry.id, owner, absl::StrCat(policy.max_len()),
      policy.overflow() == v1::DeadLetterPolicy::OVERFLOW_HOLD ? "hold" : "evict"};
  args.reserve(args.size() + 2 * fields.size());
  for (auto& [name, value] : fields) {
    args.push_back(std::move(name));
    args.push_back(std::move(value));
  }
  BeginOp();
  SendScript(
      redis_, DeadLetterScript(), {stream, spec->keys.dlq_stream}, std::move(args),
      Guard([this, spec, id = entry.id, reason, attempts = failure.attempt,
             done = std::move(done)](absl::StatusOr<RedisReply> r) {
        DeadOutcome outcome = DeadOutcome::kGone;
        absl::StatusOr<DeadLetterResult> result = Decode(r, DecodeDeadLetter);
        if (!result.ok()) {
          outcome = DeadOutcome::kFailed;
          ++stats_.redis_errors;
          spdlog::warn("dead-lettering entry {} of handler '{}' failed: {}", id,
                       spec->handler_id, std::string(result.status().message()));
        } else if (result->kind == DeadLetterResult::Kind::kDeadLettered) {
          outcome = DeadOutcome::kMoved;
          ++stats_.dead_letters;
          summary_.DeadLettered(spec->channel, spec->handler_id, reason);
          spdlog::debug("entry {} of '{}' dead-lettered for handler '{}' as {} after {} attempts "
                        "(DLQ entry {})",
                        id, spec->channel, spec->handler_id, reason, attempts, result->dlq_id);
          if (result->evicted > 0) {
            stats_.dlq_evictions += static_cast<uint64_t>(result->evicted);
            spdlog::warn("DLQ '{}' is at its cap of {}: evicted the {} oldest dead letters",
                         spec->keys.dlq_stream, spec->dead_letter_policy.max_len(),
                         result->evicted);
          }
        } else if (result->kind == DeadLetterResult::Kind::kHeld) {
          outcome = DeadOutcome::kHeld;
          ++stats_.dlq_held;
          spdlog::warn("DLQ '{}' is full (cap {}, overflow hold): entry {} stays pending and is "
                       "tried again after a lease",
                       spec->keys.dlq_stream, spec->dead_letter_policy.max_len(), id);
        } else {
          spdlog::debug("entry {} was no longer ours to dead-letter", id);
        }
        if (done) done(outcome);
        EndOp();
      }));
}

void Dispatcher::RetryDeadLetters(Handler& h) {
  if (h.dead_retry.empty()) return;
  const absl::Time now = options_.now();
  std::vector<DeadRetry> due;
  auto split = std::stable_partition(h.dead_retry.begin(), h.dead_retry.end(),
                                     [&](const DeadRetry& d) { return d.at > now; });
  due.assign(std::make_move_iterator(split), std::make_move_iterator(h.dead_retry.end()));
  h.dead_retry.erase(split, h.dead_retry.end());
  for (DeadRetry& d : due) DeadLetterById(h, d.entry, std::move(d.failure), std::move(d.reason));
}

// ---------------------------------------------------------------- due retries

void Dispatcher::MoveDue(Handler& h) {
  if (h.moving) return;
  h.moving = true;
  const absl::Time now = options_.now();
  // Until told otherwise (a schedule here, a later member), look again within
  // a second while the zset holds anything (another daemon may have
  // scheduled those retries and died), after min_sweep when it is empty (an
  // idle handler costs one ZRANGE per sweep interval).
  h.next_due = now + options_.min_sweep;
  BeginOp();
  // A cheap probe first (the earliest member only); the batch is read only
  // when something is due.
  redis_.Send({"ZRANGE", h.spec.keys.due_zset, "0", "0", "WITHSCORES"},
              Guard([this, key = HandlerRef{h.key, h.generation}, now](
                        absl::StatusOr<RedisReply> r) {
                Handler* hh = FindHandler(key);
                if (hh == nullptr) {
                  EndOp();
                  return;
                }
                double score = 0;
                if (!r.ok() || r->is_error() || !r->is_array() ||
                    (r->elements.size() == 2 && !absl::SimpleAtod(r->elements[1].str, &score))) {
                  ++stats_.redis_errors;
                  hh->moving = false;
                  hh->next_due = std::min(hh->next_due, now + options_.error_backoff);
                  EndOp();
                  return;
                }
                if (r->elements.size() == 2 &&
                    static_cast<int64_t>(score) <= absl::ToUnixMillis(now)) {
                  MoveDueBatch(*hh, now);  // ends the op
                  return;
                }
                if (r->elements.size() == 2) {
                  hh->next_due = std::min(
                      {hh->next_due, absl::FromUnixMillis(static_cast<int64_t>(score)),
                       now + std::min(options_.min_sweep, absl::Seconds(1))});
                }
                hh->moving = false;
                EndOp();
              }));
}

void Dispatcher::MoveDueBatch(Handler& h, absl::Time now) {
  const uint32_t limit = options_.move_batch;
  redis_.Send(
      {"ZRANGE", h.spec.keys.due_zset, "-inf", "+inf", "BYSCORE", "LIMIT", "0",
       absl::StrCat(limit + 1), "WITHSCORES"},
      Guard([this, key = HandlerRef{h.key, h.generation}, now, limit](
                absl::StatusOr<RedisReply> r) {
        Handler* hh = FindHandler(key);
        if (hh == nullptr) {
          EndOp();
          return;
        }
        if (!r.ok() || r->is_error() || !r->is_array()) {
          ++stats_.redis_errors;
          hh->moving = false;
          hh->next_due = std::min(hh->next_due, now + options_.error_backoff);
          EndOp();
          return;
        }
        const int64_t now_ms = absl::ToUnixMillis(now);
        if (!r->elements.empty()) {
          hh->next_due = std::min(hh->next_due, now + std::min(options_.min_sweep, absl::Seconds(1)));
        }
        std::vector<std::pair<DueMember, std::string>> due;
        for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
          const std::string& raw = r->elements[i].str;
          double score = 0;
          if (!absl::SimpleAtod(r->elements[i + 1].str, &score)) continue;
          if (static_cast<int64_t>(score) > now_ms) {
            hh->next_due = std::min(hh->next_due, absl::FromUnixMillis(static_cast<int64_t>(score)));
            break;
          }
          if (due.size() == limit) {
            hh->next_due = now;  // more are due: go on next tick
            break;
          }
          absl::StatusOr<DueMember> member = DecodeDueMember(raw);
          if (!member.ok()) {
            spdlog::warn("due zset '{}' holds a member redrive did not write; removing it",
                         hh->spec.keys.due_zset);
            redis_.Send({"ZREM", hh->spec.keys.due_zset, raw}, [](absl::StatusOr<RedisReply>) {});
            continue;
          }
          due.emplace_back(*std::move(member), raw);
        }
        if (due.empty()) {
          hh->moving = false;
          EndOp();
          return;
        }
        auto remaining = std::make_shared<size_t>(due.size());
        auto finished = [this, key, remaining] {
          if (--*remaining != 0) return;
          if (Handler* h2 = FindHandler(key)) h2->moving = false;
          EndOp();
        };
        for (const auto& [member, raw] : due) MoveOne(key, hh->names, member, raw, finished);
      }));
}

void Dispatcher::MoveOne(const HandlerRef& key, const std::shared_ptr<const SubscriptionSpec>& spec,
                         const DueMember& member, const std::string& raw_member,
                         std::function<void()> done) {
  const uint8_t source = member.source == 1 ? kRetry : kMain;
  const std::string& stream = SourceStream(*spec, source);
  redis_.Send(
      {"XRANGE", stream, member.entry_id, member.entry_id},
      Guard([this, key, spec, source, member, raw_member,
             done = std::move(done)](absl::StatusOr<RedisReply> r) mutable {
        const std::string& from = SourceStream(*spec, source);
        const std::string& group = SourceGroup(*spec, source);
        absl::StatusOr<std::vector<StreamEntry>> entries =
            r.ok() && !r->is_error() ? ParseEntryList(*std::move(r))
                                     : absl::StatusOr<std::vector<StreamEntry>>(
                                           absl::UnavailableError(ReplyText(r)));
        if (!entries.ok()) {
          ++stats_.redis_errors;
          if (Handler* h = FindHandler(key)) {
            h->next_due = std::min(h->next_due, options_.now() + options_.error_backoff);
          }
          done();
          return;
        }
        if (entries->empty()) {
          // Trimmed while waiting: nothing to retry.
          spdlog::warn("entry {} of '{}' is gone from the stream; its retry is dropped",
                       member.entry_id, from);
          redis_.Send({"ZREM", spec->keys.due_zset, raw_member}, [](absl::StatusOr<RedisReply>) {});
          redis_.Send({"XACK", from, group, member.entry_id}, [](absl::StatusOr<RedisReply>) {});
          done();
          return;
        }
        const StreamEntry& e = entries->front();
        absl::StatusOr<RetryState> state = ReadRetryState(e);
        absl::StatusOr<FieldList> fields =
            state.ok() ? RetryEntryFields(e, *state, member.failure)
                       : absl::StatusOr<FieldList>(state.status());
        if (!fields.ok()) {
          ++stats_.poison;
          FailureRecord f = member.failure;
          f.outcome = "poison";
          f.error = std::string(fields.status().message());
          f.error_code = "POISON";
          DeadLetter(spec, source, e, state.ok() ? absl::StatusOr<RetryState>(fields.status()) : state,
                     f, "poison", ScheduledConsumerName(spec->handler_id),
                     [this, spec, raw_member, done](DeadOutcome outcome) {
                       // Only once it really left: a held or failed move
                       // keeps its member, so the next pass tries again.
                       if (outcome == DeadOutcome::kMoved) {
                         redis_.Send({"ZREM", spec->keys.due_zset, raw_member},
                                     [](absl::StatusOr<RedisReply>) {});
                       }
                       done();
                     });
          return;
        }
        std::vector<std::string> args = {group, member.entry_id, raw_member,
                                         spec->keys.retry_group,
                                         ScheduledConsumerName(spec->handler_id)};
        for (auto& [name, value] : *fields) {
          args.push_back(std::move(name));
          args.push_back(std::move(value));
        }
        SendScript(redis_, MoveDueScript(), {from, spec->keys.retry_stream, spec->keys.due_zset},
                   std::move(args),
                   Guard([this, key, source, id = member.entry_id,
                          done](absl::StatusOr<RedisReply> r2) {
                     absl::StatusOr<MoveDueResult> result = Decode(r2, DecodeMoveDue);
                     if (!result.ok()) {
                       ++stats_.redis_errors;
                       spdlog::warn("moving entry {} to its retry stream failed: {}", id,
                                    std::string(result.status().message()));
                       if (Handler* h = FindHandler(key)) {
                         h->next_due = std::min(h->next_due, options_.now() + options_.error_backoff);
                       }
                     } else if (result->kind == MoveDueResult::Kind::kNotDue) {
                       // Not due on Redis's clock yet (ours runs ahead).
                       if (Handler* h = FindHandler(key)) {
                         h->next_due = std::min(h->next_due, options_.now() + options_.tick);
                       }
                     } else if (result->kind == MoveDueResult::Kind::kMoved) {
                       ++stats_.retries_moved;
                       if (Handler* h = FindHandler(key)) {
                         if (source == kRetry) h->sources[kRetry].trim_wanted = true;
                         // Read it now rather than on the notifier's word.
                         Source& src = h->sources[kRetry];
                         src.ready = true;
                         src.more = true;
                         ++src.activity;
                         MaybeRead(*h);
                         FlushOut();
                       }
                     }
                     done();
                   }));
      }));
}

// ---------------------------------------------------------------- sweeps

void Dispatcher::Sweep(Handler& h, uint8_t source) {
  Source& src = h.sources[source];
  if (src.sweeping) return;
  src.sweeping = true;
  src.next_sweep = options_.now() + SweepPeriod(h);
  const bool hygiene = src.sweep_count++ % 6 == 0;
  ++stats_.sweeps;
  if (source == kRetry) TrimRetry(h);
  const HandlerRef key{h.key, h.generation};
  // The summary form lists the consumers that have pending entries.
  redis_.Send({"XPENDING", src.stream, src.group},
              Guard([this, key, source, hygiene](absl::StatusOr<RedisReply> r) {
                Handler* hh = FindHandler(key);
                if (hh == nullptr) return;
                Source& st = hh->sources[source];
                if (hygiene) RemoveIdleConsumers(key, source);
                if (!r.ok() || r->is_error() || !r->is_array() || r->elements.size() != 4 ||
                    r->elements[0].integer == 0 || !r->elements[3].is_array()) {
                  // (NOGROUP: the retry group does not exist yet.)
                  st.sweeping = false;
                  return;
                }
                std::vector<std::string> consumers;
                for (const RedisReply& c : r->elements[3].elements) {
                  if (c.is_array() && c.elements.size() == 2 &&
                      c.elements[0].str != hh->scheduled_consumer) {
                    consumers.push_back(c.elements[0].str);
                  }
                }
                if (consumers.empty()) {
                  st.sweeping = false;
                  return;
                }
                auto remaining = std::make_shared<size_t>(consumers.size());
                for (const std::string& c : consumers) {
                  SweepConsumer(key, source, c, [this, key, source, remaining] {
                    if (--*remaining != 0) return;
                    if (Handler* h2 = FindHandler(key)) h2->sources[source].sweeping = false;
                  });
                }
              }));
}

void Dispatcher::TrimRetry(Handler& h) {
  Source& src = h.sources[kRetry];
  if (!src.trim_wanted || src.trimming) return;
  src.trim_wanted = false;
  src.trimming = true;
  ++stats_.retry_trims;
  SendScript(
      redis_, TrimRetryScript(), {src.stream},
      {absl::StrCat(options_.trim_limit),
       absl::StrCat(absl::ToInt64Milliseconds(options_.retry_retention))},
      Guard([this, key = HandlerRef{h.key, h.generation}, stream = src.stream](
                absl::StatusOr<RedisReply> r) {
        Handler* hh = FindHandler(key);
        if (IsScriptError(r) || !r->is_array() || r->elements.size() != 3) {
          ++stats_.redis_errors;
          spdlog::warn("trimming retry stream '{}' failed: {}", stream, ReplyText(r));
          if (hh != nullptr) {
            hh->sources[kRetry].trimming = false;
            hh->sources[kRetry].trim_wanted = true;
          }
          return;
        }
        const int64_t removed = r->elements[0].integer;
        stats_.retry_trimmed += static_cast<uint64_t>(std::max<int64_t>(0, removed));
        if (removed > 0) {
          spdlog::debug("trimmed {} acknowledged entries off '{}' (MINID {})", removed, stream,
                        r->elements[1].str);
        }
        if (hh != nullptr) {
          hh->sources[kRetry].trimming = false;
          // A pass bounded by the limit may have left more, and entries kept
          // only for the retention go later: trim again next sweep.
          if (removed > 0 || r->elements[2].integer == 1) {
            hh->sources[kRetry].trim_wanted = true;
          }
        }
      }));
}

void Dispatcher::SweepConsumer(const HandlerRef& key, uint8_t source, const std::string& consumer,
                               std::function<void()> done) {
  Handler* h = FindHandler(key);
  if (h == nullptr) {
    done();
    return;
  }
  const Source& src = h->sources[source];
  const std::string min_idle = absl::StrCat(absl::ToInt64Milliseconds(h->spec.lease));
  redis_.Send(
      {"XPENDING", src.stream, src.group, "IDLE", min_idle, "-", "+",
       absl::StrCat(options_.read_batch), consumer},
      Guard([this, key, source, consumer, min_idle,
             done = std::move(done)](absl::StatusOr<RedisReply> r) {
        Handler* hh = FindHandler(key);
        if (hh == nullptr || !r.ok() || r->is_error() || !r->is_array()) {
          if (r.ok() && r->is_error()) ++stats_.redis_errors;
          done();
          return;
        }
        const absl::flat_hash_set<std::string> held = HeldIds(*hh, source);
        const Source& st = hh->sources[source];
        RedisArgv argv = {"XCLAIM", st.stream, st.group, hh->spec.consumer, min_idle};
        size_t n = 0;
        for (const RedisReply& p : r->elements) {
          if (!p.is_array() || p.elements.empty()) continue;
          if (held.contains(p.elements[0].str)) continue;
          argv.push_back(p.elements[0].str);
          ++n;
        }
        if (n == 0) {
          done();
          return;
        }
        // XCLAIM with the same min-idle: of two racing daemons one wins.
        redis_.Send(argv, Guard([this, key, source, target = TargetOf(*hh, source), consumer,
                                 done](absl::StatusOr<RedisReply> r2) {
                      OnSwept(key, source, target, consumer, std::move(r2));
                      done();
                    }));
      }));
}

void Dispatcher::OnSwept(const HandlerRef& key, uint8_t source, const Target& target,
                         const std::string& consumer, absl::StatusOr<RedisReply> reply) {
  if (!reply.ok() || reply->is_error()) {
    ++stats_.redis_errors;
    return;
  }
  absl::StatusOr<std::vector<StreamEntry>> entries = ParseEntryList(*std::move(reply));
  if (!entries.ok()) return;
  Handler* h = FindHandler(key);
  if (h == nullptr) {
    // The handler left while the claim was out: give the entries straight
    // back (idle past every lease) for any daemon's sweep.
    std::vector<std::string> ids;
    for (const StreamEntry& e : *entries) ids.push_back(e.id);
    Touch(target, ids, /*release=*/true);
    return;
  }
  for (StreamEntry& e : *entries) {
    if (e.deleted) {
      QueueAck(*h, source, e.id);
      continue;
    }
    ++stats_.reclaimed;
    absl::StatusOr<RetryState> state = ReadRetryState(e);
    if (!state.ok()) {
      ++stats_.poison;
      FailureRecord f = MakeFailure(*h, 1, FailKind::kExpired,
                                    std::string(state.status().message()), "POISON");
      f.outcome = "poison";
      DeadLetter(h->names, source, e, state, f, "poison", h->spec.consumer);
      continue;
    }
    const uint32_t attempt =
        static_cast<uint32_t>(std::min<int64_t>(state->retry_count + 1, UINT32_MAX));
    summary_.LeaseExpired(h->spec.channel, h->spec.handler_id);
    spdlog::debug("entry {} of '{}' was idle past its lease on consumer '{}': attempt {} failed",
                  e.id, h->sources[source].stream, consumer, attempt);
    Fail(*h, Entry{e.id, attempt, source}, FailKind::kExpired,
         absl::StrCat("lease expired on consumer ", consumer), "LEASE_EXPIRED", std::nullopt);
  }
  FlushOut();
}

void Dispatcher::RemoveIdleConsumers(const HandlerRef& key, uint8_t source) {
  Handler* h = FindHandler(key);
  if (h == nullptr) return;
  const Source& src = h->sources[source];
  redis_.Send(
      {"XINFO", "CONSUMERS", src.stream, src.group},
      Guard([this, key, source](absl::StatusOr<RedisReply> r) {
        Handler* hh = FindHandler(key);
        if (hh == nullptr || !r.ok() || r->is_error() || !r->is_array()) return;
        const Source& st = hh->sources[source];
        const int64_t expiry_ms = absl::ToInt64Milliseconds(
            std::max(options_.consumer_expiry, 10 * hh->spec.lease));
        for (const RedisReply& c : r->elements) {
          std::string name;
          int64_t pending = -1;
          int64_t idle = 0;
          for (size_t i = 0; i + 1 < c.elements.size(); i += 2) {
            const std::string& field = c.elements[i].str;
            if (field == "name") name = c.elements[i + 1].str;
            if (field == "pending") pending = c.elements[i + 1].integer;
            if (field == "idle") idle = c.elements[i + 1].integer;
          }
          if (name.empty() || pending != 0 || idle < expiry_ms || name == hh->spec.consumer ||
              name == hh->scheduled_consumer) {
            continue;
          }
          SendScript(redis_, DeleteIdleConsumerScript(), {st.stream}, {st.group, name},
                     Guard([this, name, stream = st.stream](absl::StatusOr<RedisReply> r2) {
                       if (r2.ok() && !r2->is_error() && r2->integer == 1) {
                         ++stats_.consumers_removed;
                         spdlog::info("removed idle consumer '{}' of '{}' (nothing pending)",
                                      name, stream);
                       }
                     }));
        }
      }));
}

}  // namespace redrive
