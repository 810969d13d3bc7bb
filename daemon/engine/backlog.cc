#include "daemon/engine/backlog.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "daemon/logging.h"

namespace redrive {

void TouchEntries(EngineContext& ctx, const SubscriptionSpec& spec, uint8_t source,
                  std::vector<std::string> ids, bool release) {
  if (ids.empty()) return;
  const GroupRef g = SourceRef(spec, source);
  LogDebug(
      LogFields().Channel(spec.channel).Handler(spec.handler_id).Stream(g.stream).Group(g.group),
      "{} {} entries", release ? "releasing" : "touching", ids.size());
  if (release) ctx.stats.released += ids.size();
  ctx.ops.Touch(g, std::move(ids), release, [&stats = ctx.stats](absl::Status status) {
    if (!status.ok()) ++stats.redis_errors;
  });
}

void Backlog::Park(StreamEntry entry, uint8_t source, bool whole) {
  if (whole) {
    whole_.push_back(std::move(entry));
  } else {
    ids_.push_back(Entry{std::move(entry.id), 1, source});
  }
}

StreamEntry Backlog::PopWhole() {
  StreamEntry e = std::move(whole_.front());
  whole_.pop_front();
  return e;
}

void Backlog::Refetch(EngineContext& ctx, const SubscriptionSpec& spec, uint64_t n,
                      const OnFetched& done) {
  std::vector<Entry> asked[2];
  for (uint64_t i = 0; i < n && !ids_.empty(); ++i) {
    Entry e = std::move(ids_.front());
    ids_.pop_front();
    fetching_.insert(e.id);
    asked[e.source].push_back(std::move(e));
  }
  for (uint8_t source : {kMain, kRetry}) {
    if (asked[source].empty()) continue;
    std::vector<std::string> ids;
    ids.reserve(asked[source].size());
    for (const Entry& e : asked[source]) ids.push_back(e.id);
    ctx.ops.Claim(SourceRef(spec, source), absl::ZeroDuration(), std::move(ids),
                  [done, source, asked = std::move(asked[source])](
                      absl::StatusOr<std::vector<StreamEntry>> fetched) mutable {
                    done(source, std::move(asked), std::move(fetched));
                  });
  }
}

void Backlog::Fetched(std::vector<Entry>& asked, bool ok) {
  for (const Entry& e : asked) fetching_.erase(e.id);
  if (ok) return;
  for (auto it = asked.rbegin(); it != asked.rend(); ++it) ids_.push_front(std::move(*it));
  asked.clear();
}

void Backlog::MaybeTouch(EngineContext& ctx, const SubscriptionSpec& spec, absl::Time now) {
  if (ids_.empty() || now < touch_at_) return;
  std::vector<std::string> ids[2];
  for (const Entry& e : ids_) ids[e.source].push_back(e.id);
  for (uint8_t source : {kMain, kRetry}) {
    TouchEntries(ctx, spec, source, std::move(ids[source]), false);
  }
  touch_at_ = now + spec.lease / 3;
}

std::vector<Entry> Backlog::TakeIds() {
  std::vector<Entry> taken(std::make_move_iterator(ids_.begin()),
                           std::make_move_iterator(ids_.end()));
  ids_.clear();
  return taken;
}

void Backlog::AddHeld(uint8_t source, absl::flat_hash_set<std::string>& held) const {
  for (const Entry& e : ids_) {
    if (e.source == source) held.insert(e.id);
  }
  held.insert(fetching_.begin(), fetching_.end());
}

}  // namespace redrive
