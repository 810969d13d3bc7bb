#include "daemon/engine/sweeper.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <utility>

#include "daemon/logging.h"
#include "daemon/redis/errors.h"

namespace redrive {

Sweeper::Sweeper(EngineContext& ctx, Hooks hooks) : ctx_(ctx), hooks_(std::move(hooks)) {}

void Sweeper::Add(const HandlerRef& ref) { handlers_[ref.generation] = PerHandler{}; }

Sweeper::SourceState* Sweeper::Find(const HandlerRef& ref, uint8_t source) {
  auto it = handlers_.find(ref.generation);
  if (it == handlers_.end()) return nullptr;
  return &it->second.sources[source];
}

absl::Duration Sweeper::Period(const SubscriptionSpec& spec) const {
  return std::max(spec.lease, ctx_.options.min_sweep);
}

void Sweeper::SweepBy(const HandlerRef& ref, uint8_t source, absl::Time at) {
  if (SourceState* s = Find(ref, source)) s->next_sweep = std::min(s->next_sweep, at);
}

void Sweeper::WantTrim(const HandlerRef& ref) {
  if (SourceState* s = Find(ref, kRetry)) s->trim_wanted = true;
}

void Sweeper::MaybeSweep(const HandlerRef& ref, const SpecPtr& spec, absl::Time now) {
  auto it = handlers_.find(ref.generation);  // one lookup: this runs every tick
  if (it == handlers_.end()) return;
  const bool due[2] = {now >= it->second.sources[kMain].next_sweep,
                       now >= it->second.sources[kRetry].next_sweep};
  for (uint8_t source : {kMain, kRetry}) {
    if (due[source]) Sweep(ref, spec, source);
  }
}

void Sweeper::Sweep(const HandlerRef& ref, const SpecPtr& spec, uint8_t source) {
  SourceState& s = *Find(ref, source);
  if (s.sweeping) return;
  s.sweeping = true;
  s.next_sweep = ctx_.now() + Period(*spec);
  const bool hygiene = s.count++ % 6 == 0;
  ++ctx_.stats.sweeps;
  if (source == kRetry) Trim(ref, spec);
  const GroupRef g = SourceRef(*spec, source);
  ctx_.ops.PendingConsumers(g.stream, g.group,
                            guard_.Wrap([this, ref, spec, source, hygiene](
                                            absl::StatusOr<std::vector<std::string>> consumers) {
                              kLoopThread.AssertHeld();
                              SourceState* st = Find(ref, source);
                              if (st == nullptr) return;
                              if (hygiene) RemoveIdleConsumers(ref, spec, source);
                              if (!consumers.ok()) {
                                st->sweeping = false;
                                return;
                              }
                              OnPendingConsumers(ref, spec, source, *std::move(consumers));
                            }));
}

void Sweeper::OnPendingConsumers(const HandlerRef& ref, const SpecPtr& spec, uint8_t source,
                                 std::vector<std::string> consumers) {
  const std::string scheduled = ScheduledConsumerName(spec->handler_id);
  consumers.erase(std::remove(consumers.begin(), consumers.end(), scheduled), consumers.end());
  if (consumers.empty()) {
    Find(ref, source)->sweeping = false;
    return;
  }
  auto remaining = std::make_shared<size_t>(consumers.size());
  for (const std::string& c : consumers) {
    SweepConsumer(ref, spec, source, c, [this, ref, source, remaining] {
      kLoopThread.AssertHeld();
      if (--*remaining != 0) return;
      if (SourceState* st = Find(ref, source)) st->sweeping = false;
    });
  }
}

void Sweeper::SweepConsumer(const HandlerRef& ref, const SpecPtr& spec, uint8_t source,
                            const std::string& consumer, std::function<void()> done) {
  GroupRef owner = SourceRef(*spec, source);
  owner.consumer = consumer;
  ctx_.ops.IdlePending(
      owner, spec->lease, ctx_.options.read_batch,
      guard_.Wrap([this, ref, spec, source, consumer,
                   done = std::move(done)](absl::StatusOr<std::vector<std::string>> idle) {
        kLoopThread.AssertHeld();
        if (!idle.ok() && RedisErrorOf(idle.status()) != RedisError::kNone) {
          ++ctx_.stats.redis_errors;
        }
        if (!idle.ok() || Find(ref, source) == nullptr) {
          done();
          return;
        }
        const absl::flat_hash_set<std::string> held = hooks_.held(ref, source);
        std::vector<std::string> ids;
        for (std::string& id : *idle) {
          if (!held.contains(id)) ids.push_back(std::move(id));
        }
        if (ids.empty()) {
          done();
          return;
        }
        const GroupRef ours = SourceRef(*spec, source);
        ctx_.ops.Claim(ours, spec->lease, std::move(ids),
                       guard_.Wrap([this, ref, ours, source, consumer,
                                    done](absl::StatusOr<std::vector<StreamEntry>> claimed) {
                         kLoopThread.AssertHeld();
                         if (!claimed.ok()) {
                           ++ctx_.stats.redis_errors;
                         } else if (Find(ref, source) == nullptr) {
                           // The handler left while the claim was out: give the
                           // entries straight back for any daemon's sweep.
                           std::vector<std::string> back;
                           for (const StreamEntry& e : *claimed) back.push_back(e.id);
                           ctx_.stats.released += back.size();
                           ctx_.ops.Touch(ours, std::move(back), /*release=*/true, nullptr);
                         } else {
                           hooks_.claimed(ref, source, consumer, *std::move(claimed));
                         }
                         done();
                       }));
      }));
}

void Sweeper::Trim(const HandlerRef& ref, const SpecPtr& spec) {
  SourceState& s = *Find(ref, kRetry);
  if (!s.trim_wanted || s.trimming) return;
  s.trim_wanted = false;
  s.trimming = true;
  ++ctx_.stats.retry_trims;
  const std::string stream = spec->keys.retry_stream;
  ctx_.ops.TrimRetry(
      stream, ctx_.options.trim_limit, ctx_.options.retry_retention,
      guard_.Wrap([this, ref, stream](absl::StatusOr<TrimRetryResult> r) {
        kLoopThread.AssertHeld();
        SourceState* st = Find(ref, kRetry);
        if (!r.ok()) {
          ++ctx_.stats.redis_errors;
          LogWarn(LogFields().Stream(stream).Error(r.status().message()),
                  "trimming a retry stream failed");
          if (st != nullptr) {
            st->trimming = false;
            st->trim_wanted = true;
          }
          return;
        }
        ctx_.stats.retry_trimmed += static_cast<uint64_t>(std::max<int64_t>(0, r->removed));
        if (r->removed > 0) {
          LogDebug(LogFields().Stream(stream), "trimmed {} acknowledged entries (MINID {})",
                   r->removed, r->min_id);
        }
        if (st != nullptr) {
          st->trimming = false;
          // A pass bounded by the limit may have left more, and entries kept
          // only for the retention go later: trim again next sweep.
          if (r->removed > 0 || r->more) st->trim_wanted = true;
        }
      }));
}

void Sweeper::RemoveIdleConsumers(const HandlerRef& ref, const SpecPtr& spec, uint8_t source) {
  const GroupRef g = SourceRef(*spec, source);
  ctx_.ops.Consumers(
      g.stream, g.group,
      guard_.Wrap([this, ref, spec, g](absl::StatusOr<std::vector<ConsumerInfo>> consumers) {
        kLoopThread.AssertHeld();
        if (!consumers.ok() || Find(ref, kMain) == nullptr) return;
        const int64_t expiry_ms =
            absl::ToInt64Milliseconds(std::max(ctx_.options.consumer_expiry, 10 * spec->lease));
        const std::string scheduled = ScheduledConsumerName(spec->handler_id);
        for (const ConsumerInfo& c : *consumers) {
          if (c.name.empty() || c.pending != 0 || c.idle_ms < expiry_ms ||
              c.name == spec->consumer || c.name == scheduled) {
            continue;
          }
          ctx_.ops.DeleteIdleConsumer(
              g.stream, g.group, c.name,
              guard_.Wrap([this, name = c.name, stream = g.stream](absl::StatusOr<bool> deleted) {
                kLoopThread.AssertHeld();
                if (!deleted.ok() || !*deleted) return;
                ++ctx_.stats.consumers_removed;
                LogInfo(LogFields().Stream(stream).Consumer(name),
                        "removed an idle consumer (nothing pending)");
              }));
        }
      }));
}

}  // namespace redrive
