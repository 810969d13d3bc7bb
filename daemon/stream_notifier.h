// StreamNotifier: one blocking XREAD on a dedicated connection watches every
// stream this daemon consumes and reports which ones received entries, so
// the dispatcher issues non-blocking XREADGROUPs only where there is work.
// 1,000 idle handlers therefore cost one blocked connection and one XREAD
// every couple of seconds, not 1,000 connections or 1,000 polls.
//
// No lost wake-ups: for each watched stream the notifier keeps L, the newest
// entry id known to exist, and blocks for entries after L. When XREAD
// reports a stream, L is advanced to the stream's current last id (XREVRANGE
// + - COUNT 1) *before* the stream is reported; any entry added after that
// read is newer than L and wakes the next XREAD. (This relies on the
// XREVRANGE and the readers' XREADGROUPs sharing one connection, so their
// order on the server is the order they were sent.)
//
// It is the ActivityNotifier of a single Redis server (or Sentinel-managed
// primary); ClusterStreamNotifier runs one per cluster master.
//
// Loop thread only.
#ifndef REDRIVE_DAEMON_STREAM_NOTIFIER_H_
#define REDRIVE_DAEMON_STREAM_NOTIFIER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "daemon/activity_notifier.h"
#include "daemon/redis/stream_watch.h"

namespace redrive {

class StreamNotifier final : public ActivityNotifier {
 public:
  // `ops` must outlive the notifier; its blocking connection is dedicated
  // to the notifier's reads.
  StreamNotifier(StreamWatchOps& ops, Callback on_activity,
                 absl::Duration block = absl::Seconds(2));
  ~StreamNotifier() override;

  // Starts watching `stream` (reference counted). `ready` runs once the
  // stream's current last id is known and the XREAD covers it; only entries
  // added after that moment are reported.
  void Watch(const std::string& stream, std::function<void()> ready) override;
  void Unwatch(const std::string& stream) override;

  // Called after the blocking connection (re)connects: every stream is
  // reported once, since entries may have arrived unseen.
  void OnBlockingConnected(int64_t client_id);

  // Starts an XREAD if none is running (after an error reply, say).
  void Kick() override;

  // False while XREADs fail: the dispatcher then polls its sources.
  bool healthy() const override { return healthy_; }
  size_t watched() const override { return streams_.size(); }

 private:
  struct Watched {
    int refs = 0;
    std::string last_id = "0-0";
  };

  void Cycle();
  void Interrupt();
  void Unblock(int tries_left);
  void OnRead(absl::StatusOr<std::vector<StreamCursor>> reported);

  StreamWatchOps& ops_;
  const Callback on_activity_;
  const absl::Duration block_;
  absl::flat_hash_map<std::string, Watched> streams_;
  bool reading_ = false;
  bool healthy_ = false;
  int64_t client_id_ = 0;
  uint64_t epoch_ = 0;       // bumps when the watched set changes
  uint64_t read_epoch_ = 0;  // epoch of the XREAD in flight
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_STREAM_NOTIFIER_H_
