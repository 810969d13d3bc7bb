// AckBatcher: batches the XACKs of settled entries per (stream, group):
// flushed when `ack_batch` ids wait or `ack_delay` after the first one.
// A failed XACK leaves the entries pending; the sweep reclaims them.
//
// Loop thread only.
#ifndef REDRIVE_DAEMON_ENGINE_ACK_BATCHER_H_
#define REDRIVE_DAEMON_ENGINE_ACK_BATCHER_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "daemon/engine/context.h"

namespace redrive {

class AckBatcher {
 public:
  explicit AckBatcher(EngineContext& ctx);

  void Queue(const std::string& stream, const std::string& group, std::string id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Sends every queued XACK now.
  void Flush() ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  size_t queued() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread) { return queued_; }

 private:
  EngineContext& ctx_;
  absl::flat_hash_map<std::pair<std::string, std::string>, std::vector<std::string>> ids_
      ABSL_GUARDED_BY(kLoopThread);
  // The entry of ids_ that Queue used last (null before the first).
  const std::pair<std::string, std::string>* last_key_ ABSL_GUARDED_BY(kLoopThread) = nullptr;
  std::vector<std::string>* last_ ABSL_GUARDED_BY(kLoopThread) = nullptr;
  size_t queued_ ABSL_GUARDED_BY(kLoopThread) = 0;
  std::unique_ptr<EventLoop::Timer> timer_ ABSL_GUARDED_BY(kLoopThread);
  bool armed_ ABSL_GUARDED_BY(kLoopThread) = false;
  LifeGuard guard_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_ACK_BATCHER_H_
