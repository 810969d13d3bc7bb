#include "daemon/engine/pause_poller.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace redrive {

std::string EngineHandlerKey(absl::string_view channel, absl::string_view handler_id) {
  return absl::StrCat(channel, std::string(1, '\0'), handler_id);
}

PausePoller::PausePoller(EngineContext& ctx, OnChange on_change, KnownKeys known)
    : ctx_(ctx), on_change_(std::move(on_change)), known_(std::move(known)) {}

void PausePoller::Set(const std::string& key, bool paused) {
  ++epoch_;
  if (paused) {
    paused_.insert(key);
  } else {
    paused_.erase(key);
  }
  on_change_(key, paused);
}

void PausePoller::Check(const std::string& key, absl::string_view channel,
                        absl::string_view handler_id) {
  // Replies arrive in order: this one comes before the handler's first read.
  ctx_.ops.HashHas(std::string(kPausedHandlersKey), RegistryField(channel, handler_id),
                   guard_.Wrap([this, key, epoch = epoch_](absl::StatusOr<bool> paused) {
                     kLoopThread.AssertHeld();
                     if (!paused.ok() || epoch != epoch_) return;  // a local Set wins
                     if (*paused) {
                       paused_.insert(key);
                     } else {
                       paused_.erase(key);  // resumed since an earlier read
                     }
                     on_change_(key, *paused);
                   }));
}

void PausePoller::MaybePoll(absl::Time now) {
  if (now < next_poll_) return;
  next_poll_ = now + ctx_.options.pause_poll;
  Poll();
}

void PausePoller::Poll() {
  if (polling_) return;
  polling_ = true;
  ctx_.ops.HashFields(
      std::string(kPausedHandlersKey),
      guard_.Wrap([this, epoch = epoch_](
                      absl::StatusOr<std::vector<std::pair<std::string, std::string>>> fields) {
        kLoopThread.AssertHeld();
        polling_ = false;
        if (!fields.ok() || epoch != epoch_) return;
        absl::flat_hash_set<std::string> paused;
        for (const auto& [field, value] : *fields) {
          const size_t space = field.find(' ');
          if (space == std::string::npos) continue;
          paused.insert(EngineHandlerKey(absl::string_view(field).substr(0, space),
                                         absl::string_view(field).substr(space + 1)));
        }
        paused_ = std::move(paused);
        for (const std::string& key : known_()) on_change_(key, paused_.contains(key));
      }));
}

}  // namespace redrive
