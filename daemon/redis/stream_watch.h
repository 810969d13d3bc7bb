// StreamWatchOps: the typed Redis operations of the StreamNotifier — the
// newest id of a stream, one blocking read over many streams on a dedicated
// connection, and CLIENT UNBLOCK of that read — with their implementation
// over two AsyncCommanders (RedisStreamWatchOps).
//
// Callbacks run later on the EventLoop thread, never inside the call.
// Loop thread only.
#ifndef REDRIVE_DAEMON_REDIS_STREAM_WATCH_H_
#define REDRIVE_DAEMON_REDIS_STREAM_WATCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "daemon/redis/commander.h"
#include "daemon/redis/stream_ops.h"

namespace redrive {

// A stream and an entry id in it.
struct StreamCursor {
  std::string stream;
  std::string id;
};

class StreamWatchOps {
 public:
  virtual ~StreamWatchOps() = default;

  // The newest entry id of `stream` ("0-0" when it is empty or missing), on
  // the command connection (XREVRANGE + - COUNT 1).
  virtual void LastId(const std::string& stream, OpCallback<std::string> done) = 0;
  // Blocks up to `block` on the blocking connection for an entry after each
  // cursor (XREAD COUNT 1 BLOCK): the streams that have one, each with the
  // first such id; none when the block timed out.
  virtual void WaitForEntries(const std::vector<StreamCursor>& after, absl::Duration block,
                              OpCallback<std::vector<StreamCursor>> done) = 0;
  // CLIENT UNBLOCK on the command connection: whether `client_id` was blocked.
  virtual void Unblock(int64_t client_id, OpCallback<bool> done) = 0;
  virtual bool blocking_connected() const = 0;
};

class RedisStreamWatchOps final : public StreamWatchOps {
 public:
  // Both connections must outlive this object.
  RedisStreamWatchOps(AsyncCommander& blocking, AsyncCommander& commands)
      : blocking_(blocking), commands_(commands) {}

  void LastId(const std::string& stream, OpCallback<std::string> done) override;
  void WaitForEntries(const std::vector<StreamCursor>& after, absl::Duration block,
                      OpCallback<std::vector<StreamCursor>> done) override;
  void Unblock(int64_t client_id, OpCallback<bool> done) override;
  bool blocking_connected() const override { return blocking_.connected(); }

 private:
  AsyncCommander& blocking_;
  AsyncCommander& commands_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_STREAM_WATCH_H_
