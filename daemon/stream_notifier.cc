#include "daemon/stream_notifier.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "daemon/logging.h"
#include "daemon/stream_entry.h"

namespace redrive {
namespace {

// Updates `last_id` from an XREVRANGE ... COUNT 1 reply: the entry's id, or
// "0-0" for an empty or missing stream. A failed call leaves it unchanged.
void UpdateLastId(const absl::StatusOr<RedisReply>& reply, std::string& last_id) {
  if (!reply.ok() || !reply->is_array()) return;
  if (reply->elements.empty()) {
    last_id = "0-0";
    return;
  }
  const RedisReply& e = reply->elements[0];
  if (e.is_array() && !e.elements.empty() && e.elements[0].is_string()) {
    last_id = e.elements[0].str;
  }
}

}  // namespace

StreamNotifier::StreamNotifier(AsyncCommander& blocking, AsyncCommander& commands,
                               Callback on_activity, absl::Duration block)
    : blocking_(blocking), commands_(commands), on_activity_(std::move(on_activity)),
      block_(block) {}

StreamNotifier::~StreamNotifier() { *alive_ = false; }

void StreamNotifier::Watch(const std::string& stream, std::function<void()> ready) {
  Watched& w = streams_[stream];
  if (++w.refs > 1) {
    ready();
    return;
  }
  commands_.Send({"XREVRANGE", stream, "+", "-", "COUNT", "1"},
                 [this, alive = alive_, stream, ready = std::move(ready)](
                     absl::StatusOr<RedisReply> reply) {
                   if (!*alive) return;
                   auto it = streams_.find(stream);
                   if (it != streams_.end()) {
                     UpdateLastId(reply, it->second.last_id);
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
  commands_.Send({"CLIENT", "UNBLOCK", absl::StrCat(client_id_)},
                 [this, alive = alive_, tries_left](absl::StatusOr<RedisReply> r) {
                   if (!*alive) return;
                   if (r.ok() && r->is_integer() && r->integer == 0) Unblock(tries_left - 1);
                 });
}

void StreamNotifier::Kick() { Cycle(); }

void StreamNotifier::Cycle() {
  if (reading_ || streams_.empty() || !blocking_.connected()) return;
  RedisArgv argv = {"XREAD", "COUNT", "1", "BLOCK"};
  const std::string block_ms = absl::StrCat(absl::ToInt64Milliseconds(block_));
  argv.push_back(block_ms);
  argv.push_back("STREAMS");
  argv.reserve(argv.size() + 2 * streams_.size());
  for (const auto& [stream, w] : streams_) argv.push_back(stream);
  for (const auto& [stream, w] : streams_) argv.push_back(w.last_id);
  reading_ = true;
  read_epoch_ = epoch_;
  blocking_.Send(
      argv,
      [this, alive = alive_](absl::StatusOr<RedisReply> reply) {
        if (*alive) OnRead(std::move(reply));
      },
      block_);
}

void StreamNotifier::OnRead(absl::StatusOr<RedisReply> reply) {
  reading_ = false;
  if (!reply.ok() || reply->is_error()) {
    healthy_ = false;
    spdlog::debug("stream notifier read failed: {}",
                  reply.ok() ? reply->str : std::string(reply.status().message()));
    // The blocking connection reconnects and calls OnBlockingConnected; a
    // Redis error reply (e.g. a key of the wrong type) is retried on the
    // next cycle after the dispatcher's tick.
    return;
  }
  healthy_ = true;
  // (stream, the id XREAD returned for it)
  std::vector<std::pair<std::string, std::string>> active;
  if (reply->is_array()) {
    for (const RedisReply& s : reply->elements) {
      if (s.is_array() && s.elements.size() == 2 && streams_.contains(s.elements[0].str)) {
        std::string seen;
        const RedisReply& entries = s.elements[1];
        if (entries.is_array() && !entries.elements.empty() &&
            !entries.elements[0].elements.empty()) {
          seen = entries.elements[0].elements[0].str;
        }
        active.emplace_back(s.elements[0].str, std::move(seen));
      }
    }
  }
  if (active.empty()) {
    Cycle();
    return;
  }
  // Advance L for every active stream, then report them, then block again.
  auto remaining = std::make_shared<size_t>(active.size());
  for (auto& [stream, seen] : active) {
    commands_.Send({"XREVRANGE", stream, "+", "-", "COUNT", "1"},
                   [this, alive = alive_, stream = stream, seen = seen,
                    remaining](absl::StatusOr<RedisReply> r) {
                     if (!*alive) return;
                     auto it = streams_.find(stream);
                     if (it != streams_.end()) {
                       // Without the last id, at least step past the entry
                       // XREAD reported, so the next XREAD cannot spin on it.
                       if (!r.ok() || r->is_error()) {
                         if (!seen.empty()) it->second.last_id = seen;
                       } else {
                         UpdateLastId(r, it->second.last_id);
                       }
                     }
                     on_activity_(stream);
                     if (--*remaining == 0) Cycle();
                   });
  }
}

}  // namespace redrive
