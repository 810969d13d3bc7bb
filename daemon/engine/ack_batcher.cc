#include "daemon/engine/ack_batcher.h"

#include <spdlog/spdlog.h>

#include "daemon/logging.h"

namespace redrive {

AckBatcher::AckBatcher(EngineContext& ctx) : ctx_(ctx) {
  timer_ = ctx_.loop.NewTimer([this] {
    kLoopThread.AssertHeld();
    armed_ = false;
    Flush();
  });
}

void AckBatcher::Queue(const std::string& stream, const std::string& group, std::string id) {
  // Settles come in runs of one handler's stream: the last target is kept
  // (ids_ only grows in this function, so its pointers hold until then).
  if (last_ == nullptr || last_key_->first != stream || last_key_->second != group) {
    auto it = ids_.try_emplace(std::make_pair(stream, group)).first;
    last_key_ = &it->first;
    last_ = &it->second;
  }
  last_->push_back(std::move(id));
  if (++queued_ >= ctx_.options.ack_batch) {
    Flush();
  } else if (!armed_) {
    armed_ = true;
    timer_->Arm(ctx_.options.ack_delay);
  }
}

void AckBatcher::Flush() {
  if (queued_ == 0) return;
  for (auto& [target, ids] : ids_) {
    if (ids.empty()) continue;
    std::vector<std::string> batch;
    batch.swap(ids);
    ctx_.ops.Ack(target.first, target.second, std::move(batch),
                 guard_.Wrap([this](absl::Status status) {
                   kLoopThread.AssertHeld();
                   if (status.ok()) return;
                   ++ctx_.stats.redis_errors;
                   LogWarn(LogFields().Error(status.message()),
                           "XACK failed; the entries stay pending and are reclaimed");
                 }));
  }
  queued_ = 0;
}

}  // namespace redrive
