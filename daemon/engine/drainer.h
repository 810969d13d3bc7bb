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

#include "daemon/engine/context.h"

namespace redrive {

class Drainer {
 public:
  explicit Drainer(EngineContext& ctx) : ctx_(ctx) {}

  void Start(absl::Duration grace, std::function<void()> done);
  bool draining() const { return draining_; }
  // Whether unsettled deliveries are to be handed back now: a drain is
  // waiting and everything is `settled` or the grace is over.
  bool HandBackDue(bool settled) const;
  // Whether the retry operations in progress let the drain end now.
  bool OpsDone() const;
  // Ends the drain: `done` runs after every reply to earlier calls.
  void Finish();

 private:
  EngineContext& ctx_;
  bool draining_ = false;
  absl::Time deadline_ = absl::InfiniteFuture();
  std::function<void()> done_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_DRAINER_H_
