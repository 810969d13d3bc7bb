// Presence: this daemon's entries in the handler registry {redrive}:handlers
// (keys.h): the Registered record of each handler (for Admin.ListHandlers,
// R-E1) and this daemon's presence heartbeat for it (Admin.DeleteHandler
// refuses while a heartbeat is fresh), renewed every presence_interval and
// removed when the handler leaves this daemon.
//
// Loop thread only.
#ifndef REDRIVE_DAEMON_ENGINE_PRESENCE_H_
#define REDRIVE_DAEMON_ENGINE_PRESENCE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "daemon/engine/context.h"

namespace redrive {

class Presence {
 public:
  explicit Presence(EngineContext& ctx) : ctx_(ctx) {}

  // Records the handler and its heartbeat; `done` runs after the write
  // (failures are logged).
  void Record(const SubscriptionSpec& spec, std::function<void()> done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Whether MaybeBeat would write at `now`.
  bool due(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread) {
    return now >= next_beat_;
  }
  // Renews the heartbeats of `specs` when the interval has passed.
  void MaybeBeat(absl::Time now, const std::vector<const SubscriptionSpec*>& specs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void Remove(const SubscriptionSpec& spec) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

 private:
  EngineContext& ctx_;
  absl::Time next_beat_ ABSL_GUARDED_BY(kLoopThread) = absl::InfinitePast();
  LifeGuard guard_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_PRESENCE_H_
