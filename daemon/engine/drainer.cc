#include "daemon/engine/drainer.h"

#include <utility>

namespace redrive {
namespace {

// After the drain grace, how long retry scripts already sent may take.
constexpr absl::Duration kDrainOpsWait = absl::Seconds(10);

}  // namespace

void Drainer::Start(absl::Duration grace, std::function<void()> done) {
  draining_ = true;
  deadline_ = ctx_.now() + grace;
  done_ = std::move(done);
}

bool Drainer::HandBackDue(bool settled) const {
  return done_ != nullptr && (settled || ctx_.now() >= deadline_);
}

bool Drainer::OpsDone() const {
  return ctx_.tracker.in_progress() == 0 || ctx_.now() >= deadline_ + kDrainOpsWait;
}

void Drainer::Finish() {
  auto done = std::move(done_);
  done_ = nullptr;
  // Runs after the XACK/XCLAIM replies sent before (replies arrive in order).
  ctx_.ops.Barrier([done = std::move(done)](absl::Status) { done(); });
}

}  // namespace redrive
