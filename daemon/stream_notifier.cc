#include "daemon/stream_notifier.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "daemon/logging.h"
#include "daemon/stream_entry.h"

namespace redrive {

StreamNotifier::StreamNotifier(StreamWatchOps& ops, Callback on_activity, absl::Duration block)
    : ops_(ops), on_activity_(std::move(on_activity)), block_(block) {}

StreamNotifier::~StreamNotifier() { *alive_ = false; }

void StreamNotifier::Watch(const std::string& stream, std::function<void()> ready) {
  Watched& w = streams_[stream];
  if (++w.refs > 1) {
    ready();
    return;
  }
  ops_.LastId(stream, [this, alive = alive_, stream,
                       ready = std::move(ready)](absl::StatusOr<std::string> last) {
    if (!*alive) return;
    auto it = streams_.find(stream);
    if (it != streams_.end()) {
      if (last.ok()) it->second.last_id = *std::move(last);  // a failure leaves it
      Interrupt();
    }
    ready();
  });
}

void StreamNotifier::Unwatch(const std::string& stream) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  if (--it->second.refs > 0) return;
  streams_.erase(it);
  Interrupt();
}

void StreamNotifier::OnBlockingConnected(int64_t client_id) {
  client_id_ = client_id;
  reading_ = false;  // any XREAD in flight died with the old connection
  healthy_ = true;
  for (const auto& [stream, w] : streams_) on_activity_(stream);
  Cycle();
}

// Makes a blocked XREAD return at once so the next one has the new key set.
void StreamNotifier::Interrupt() {
  ++epoch_;
  if (!reading_) {
    Cycle();
    return;
  }
  Unblock(5);
}

// CLIENT UNBLOCK travels on another connection than the XREAD, so it can
// reach Redis before the XREAD blocks (it then answers 0): try again while
// the XREAD in flight still has the old key set.
void StreamNotifier::Unblock(int tries_left) {
  if (client_id_ == 0 || !reading_ || read_epoch_ == epoch_ || tries_left == 0) return;
  ops_.Unblock(client_id_, [this, alive = alive_, tries_left](absl::StatusOr<bool> unblocked) {
    if (!*alive) return;
    if (unblocked.ok() && !*unblocked) Unblock(tries_left - 1);
  });
}

void StreamNotifier::Kick() { Cycle(); }

void StreamNotifier::Cycle() {
  if (reading_ || streams_.empty() || !ops_.blocking_connected()) return;
  std::vector<StreamCursor> after;
  after.reserve(streams_.size());
  for (const auto& [stream, w] : streams_) after.push_back(StreamCursor{stream, w.last_id});
  reading_ = true;
  read_epoch_ = epoch_;
  ops_.WaitForEntries(after, block_,
                      [this, alive = alive_](absl::StatusOr<std::vector<StreamCursor>> active) {
                        if (*alive) OnRead(std::move(active));
                      });
}

void StreamNotifier::OnRead(absl::StatusOr<std::vector<StreamCursor>> reported) {
  reading_ = false;
  if (!reported.ok()) {
    healthy_ = false;
    spdlog::debug("stream notifier read failed: {}", std::string(reported.status().message()));
    // The blocking connection reconnects and calls OnBlockingConnected; a
    // Redis error reply (e.g. a key of the wrong type) is retried on the
    // next cycle after the dispatcher's tick.
    return;
  }
  healthy_ = true;
  // (stream, the id XREAD returned for it)
  std::vector<StreamCursor> active;
  for (StreamCursor& c : *reported) {
    if (streams_.contains(c.stream)) active.push_back(std::move(c));
  }
  if (active.empty()) {
    Cycle();
    return;
  }
  // Advance L for every active stream, then report them, then block again.
  auto remaining = std::make_shared<size_t>(active.size());
  for (StreamCursor& c : active) {
    ops_.LastId(c.stream, [this, alive = alive_, stream = c.stream, seen = c.id,
                           remaining](absl::StatusOr<std::string> last) {
      if (!*alive) return;
      auto it = streams_.find(stream);
      if (it != streams_.end()) {
        // Without the last id, at least step past the entry XREAD
        // reported, so the next XREAD cannot spin on it.
        if (last.ok()) {
          it->second.last_id = *std::move(last);
        } else if (!seen.empty()) {
          it->second.last_id = seen;
        }
      }
      on_activity_(stream);
      if (--*remaining == 0) Cycle();
    });
  }
}

}  // namespace redrive
