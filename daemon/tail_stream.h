// TailStream: the server side of Broker.Tail — a channel watched like
// `tail -f` with plain XREADs of its stream, without a consumer group, so a
// tail takes nothing from any handler and leaves nothing in Redis.
//
// Protocol of one call:
//   1. the request is validated (INVALID_ARGUMENT ends the call at once);
//   2. the start position is fixed by the first read: after the stream's
//      last entry (default), "0-0" (from_start) or after_id; it is written
//      first, as `started`;
//   3. a non-blocking XREAD (at most `read_batch` entries, never more than
//      the entries still wanted) runs on a RedisExecutor thread; each entry
//      found is written as one TailResponse, in order, one write in flight;
//   4. when a read finds nothing, the next one is `poll_interval` later
//      (a grpc::Alarm, so no thread waits);
//   5. the call ends OK after max_entries entries, CANCELLED when the
//      client cancels or goes away, FAILED_PRECONDITION when the key is not
//      a stream, UNAVAILABLE when Redis fails.
// Exactly one step (a read on the executor, an alarm, or a write) is in
// progress at any time; whichever step sees the end calls Finish, once.
// OnCancel only records the cancellation and cancels a pending alarm.
//
// Thread-safe: steps run on executor, alarm and gRPC threads one after the
// other; the state they share outside that hand-off is guarded by `mu_`.
#ifndef REDRIVE_DAEMON_TAIL_STREAM_H_
#define REDRIVE_DAEMON_TAIL_STREAM_H_

#include <grpcpp/alarm.h>

#include <deque>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/keys.h"
#include "daemon/metrics.h"
#include "daemon/redis/executor.h"
#include "redrive/v1/broker.grpc.pb.h"

namespace redrive {

class TailStream final : public grpc::ServerWriteReactor<v1::TailResponse> {
 public:
  struct Options {
    KeyStyle key_style = KeyStyle::kEggAI;
    absl::Duration poll_interval = absl::Milliseconds(100);
    uint32_t read_batch = 64;
    Gauge* open_streams = nullptr;  // counts the call while it exists
  };

  // Starts the call. `executor` must outlive it (the gRPC server does).
  // Deletes itself when the call is done.
  TailStream(const v1::TailRequest& request, RedisExecutor& executor, Options options);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Queues a read on the executor.
  void Poll();
  // Executor thread: one XREAD (the first one also fixes the start).
  void Read(RedisCommander& redis);
  // Writes the next buffered entry; with none left, polls again (at once
  // when the last read was full, else after poll_interval).
  void WriteNext();
  void PollLater();
  void End(grpc::Status status);
  bool cancelled() const ABSL_LOCKS_EXCLUDED(mu_);
  grpc::Status NotAStream() const;
  // The status that ends the call for a failed read (WRONGTYPE: the key is
  // not a stream).
  grpc::Status CommandFailure(const absl::Status& status) const;

  // Constant after construction.
  const GaugeHold open_;
  const Options options_;
  RedisExecutor& executor_;
  // What the call watches; constant once the constructor validated it.
  struct Watch {
    std::string channel;
    std::string stream;
    uint64_t max_entries = 0;
    bool from_start = false;
  };
  Watch watch_;

  // Owned by the step in progress (steps hand over one after the other).
  struct Progress {
    std::string last_id;   // "" until the first read fixed the start
    bool started = false;  // the `started` message was queued
    std::deque<v1::TailResponse> buffer;
    bool more = false;  // the last read returned as many entries as it asked
    uint64_t sent = 0;
    uint64_t read = 0;
  };
  Progress step_;

  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  // The alarm of the wait in progress (a fresh one per wait).
  std::unique_ptr<grpc::Alarm> alarm_ ABSL_GUARDED_BY(mu_);
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_TAIL_STREAM_H_
