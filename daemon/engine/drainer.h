// Drainer: the state of a graceful drain (SIGTERM). While draining nothing
// is read or handed out; once every delivery is settled or the grace is
// over, the dispatcher hands what is unsettled back (no attempt counted),
// waits up to 10 s more for retry operations already sent (OpTracker), and
// Finish runs `done` after every earlier Redis reply.
//
// Loop thread only.
#ifndef REDRIVE_DAEMON_ENGINE_DRAINER_H_
#define REDRIVE_DAEMON_ENGINE_DRAINER_H_

#include <functional>

#include "absl/base/thread_annotations.h"
#include "daemon/engine/context.h"

namespace redrive {

class Drainer {
 public:
  explicit Drainer(EngineContext& ctx) : ctx_(ctx) {}

  void Start(absl::Duration grace, std::function<void()> done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  bool draining() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread) { return draining_; }
  // Whether unsettled deliveries are to be handed back now: a drain is
  // waiting and everything is `settled` or the grace is over.
  bool HandBackDue(bool settled) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Whether the retry operations in progress let the drain end now.
  bool OpsDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Ends the drain: `done` runs after every reply to earlier calls.
  void Finish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

 private:
  EngineContext& ctx_;
  bool draining_ ABSL_GUARDED_BY(kLoopThread) = false;
  absl::Time deadline_ ABSL_GUARDED_BY(kLoopThread) = absl::InfiniteFuture();
  std::function<void()> done_ ABSL_GUARDED_BY(kLoopThread);
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_DRAINER_H_
