// PausePoller: which handlers are paused (R-E5), as set here or as other
// daemons wrote it in {redrive}:paused (RegistryField → time), read every
// `pause_poll` while handlers are registered, and for one handler when it is
// registered. A local Set since a read was sent wins over that read.
//
// Handler keys are EngineHandlerKey(channel, handler_id).
//
// Loop thread only.
#ifndef REDRIVE_DAEMON_ENGINE_PAUSE_POLLER_H_
#define REDRIVE_DAEMON_ENGINE_PAUSE_POLLER_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "daemon/engine/context.h"

namespace redrive {

// The key of a handler in the engine's tables.
std::string EngineHandlerKey(absl::string_view channel, absl::string_view handler_id);

class PausePoller {
 public:
  // `on_change(key, paused)` runs for every handler whose state a read or a
  // Set reported (also when unchanged ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread); the caller
  // compares).
  using OnChange = std::function<void(const std::string& key, bool paused)>;
  using KnownKeys = std::function<std::vector<std::string>()>;

  // `known` lists the handler keys registered here (each poll reports every
  // one of them).
  PausePoller(EngineContext& ctx, OnChange on_change, KnownKeys known);

  bool paused(const std::string& key) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread) {
    return paused_.contains(key);
  }
  // A pause or resume made here (Admin.PauseHandler on this daemon).
  void Set(const std::string& key, bool paused) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Reads whether a handler being registered is paused.
  void Check(const std::string& key, absl::string_view channel, absl::string_view handler_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Reads {redrive}:paused when the poll interval has passed.
  void MaybePoll(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

 private:
  void Poll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

  EngineContext& ctx_;
  const OnChange on_change_;
  const KnownKeys known_;
  absl::flat_hash_set<std::string> paused_ ABSL_GUARDED_BY(kLoopThread);
  absl::Time next_poll_ ABSL_GUARDED_BY(kLoopThread) = absl::InfinitePast();
  bool polling_ ABSL_GUARDED_BY(kLoopThread) = false;
  // Bumped by Set: a read sent before it may carry the old state.
  uint64_t epoch_ ABSL_GUARDED_BY(kLoopThread) = 0;
  LifeGuard guard_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_PAUSE_POLLER_H_
