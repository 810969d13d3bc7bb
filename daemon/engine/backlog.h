// Backlog: what was read for a handler and found no free slot (every session
// full, or the handler paused).
//
// Entries of an auto-ack handler were acknowledged at read and cannot be
// fetched again: they are kept whole. Others are kept by id only — they stay
// pending under this daemon's consumer — and are fetched again (XCLAIM with
// min-idle 0: still ours, idle time reset, fields returned; deleted ones come
// back marked) when slots free. Meanwhile their idle time is reset every
// lease / 3, so no sweep takes them.
//
// Loop thread only.
#ifndef REDRIVE_DAEMON_ENGINE_BACKLOG_H_
#define REDRIVE_DAEMON_ENGINE_BACKLOG_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/engine/context.h"
#include "daemon/stream_entry.h"

namespace redrive {

// Resets the idle time of `ids` of a handler's source (still ours), or with
// `release` sets it past every lease so any daemon's reclaimer takes them.
// A failed reply counts a redis error.
void TouchEntries(EngineContext& ctx, const SubscriptionSpec& spec, uint8_t source,
                  std::vector<std::string> ids, bool release);

class Backlog {
 public:
  // The reply to a fetch of `asked` (ids of one source).
  using OnFetched = std::function<void(uint8_t source, std::vector<Entry> asked,
                                       absl::StatusOr<std::vector<StreamEntry>> fetched)>;

  // Keeps `entry` of `source`: whole (auto-ack) or by id.
  void Park(StreamEntry entry, uint8_t source, bool whole);
  bool has_whole() const { return !whole_.empty(); }
  StreamEntry PopWhole();
  bool has_ids() const { return !ids_.empty(); }
  // Slots the backlog will take: what it keeps and what is being fetched.
  uint64_t taken() const { return ids_.size() + whole_.size() + fetching_.size(); }
  size_t fetching() const { return fetching_.size(); }

  // Fetches the first `n` ids again, one command per source; `done` gets
  // each reply (the Backlog may be gone by then: `done` must not rely on it).
  void Refetch(EngineContext& ctx, const SubscriptionSpec& spec, uint64_t n, const OnFetched& done);
  // A fetch's reply came: `asked` is no longer being fetched; when the fetch
  // failed the ids go back to the front, in their order, for the next try.
  void Fetched(std::vector<Entry>& asked, bool ok);
  // Resets the idle time of the ids kept, at most every lease / 3.
  void MaybeTouch(EngineContext& ctx, const SubscriptionSpec& spec, absl::Time now);
  // Removes and returns the ids kept (whole entries stay).
  std::vector<Entry> TakeIds();
  // Ids of `source` kept or being fetched (a sweep skips them).
  void AddHeld(uint8_t source, absl::flat_hash_set<std::string>& held) const;

 private:
  std::deque<Entry> ids_;
  std::deque<StreamEntry> whole_;
  // Being fetched; a collision of the two sources' ids only makes a sweep
  // skip an entry once.
  absl::flat_hash_set<std::string> fetching_;
  absl::Time touch_at_ = absl::InfinitePast();
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_BACKLOG_H_
