// SubscribeSession: the gRPC reactor of one Subscribe stream (callback API).
//
// It parses the client's messages itself (the method is registered raw):
// bytes that are not a SubscribeRequest end the stream with INVALID_ARGUMENT.
// It validates them (registration first and once, verbs batches of
// 1..10,000), forwards them to the DeliveryEngine, and writes what
// the engine sends: one write in flight at a time, queued messages behind it,
// consecutive delivery batches merged while a write is in flight. Finish is
// called exactly once, after queued writes, and the reactor deletes itself in
// OnDone, after detaching its sink so the engine can no longer reach it.
//
// Thread-safe: gRPC and the engine's loop call in concurrently.
#ifndef REDRIVE_DAEMON_SUBSCRIBE_SESSION_H_
#define REDRIVE_DAEMON_SUBSCRIBE_SESSION_H_

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/server_callback.h>

#include <deque>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "daemon/delivery_engine.h"
#include "daemon/keys.h"
#include "daemon/metrics.h"
#include "redrive/v1/broker.pb.h"

namespace redrive {

inline constexpr int kMaxVerbsPerMessage = 10000;

class SubscribeSession final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // `open_streams` (may be null) counts the session while it exists.
  SubscribeSession(DeliveryEngine& engine, KeyStyle key_style, std::string instance_id,
                   Gauge* open_streams);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  class Sink;
  friend class Sink;

  ~SubscribeSession() override = default;
  // Queues `msg`; starts a write when none is in flight.
  void Enqueue(const v1::SubscribeResponse& msg) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues a Deliveries message in its wire form (SessionSink::SendDeliveries),
  // merged into a queued one that has not started writing when the budget
  // allows.
  void EnqueueDeliveries(std::string deliveries) ABSL_LOCKS_EXCLUDED(mu_);
  // Finishes with `status` once queued messages are written (first call wins).
  void RequestFinish(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);
  void Pump() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Handles one client message (on its own arena, which `message` keeps);
  // false when the stream was finished.
  bool Handle(const std::shared_ptr<const v1::SubscribeRequest>& message);
  void FailAndDisconnect(absl::Status status);

  const GaugeHold open_;
  DeliveryEngine& engine_;
  const KeyStyle key_style_;
  const std::string instance_id_;
  const uint64_t id_;
  std::shared_ptr<Sink> sink_;

  // Reads: one in flight, touched only from OnReadDone.
  grpc::ByteBuffer read_buffer_;
  bool registered_ = false;

  absl::Mutex mu_;
  // A message in its wire form: a whole SubscribeResponse, or for
  // deliveries the Deliveries message (the SubscribeResponse field around it
  // is added when it is written, so queued batches can be appended to).
  struct Outgoing {
    std::string bytes;
    bool deliveries = false;
    // A message that could not be serialized: the stream ends with
    // INTERNAL when it reaches the front.
    bool unserializable = false;
  };
  // Protobuf's limit for one message, less room for the field header.
  static constexpr size_t kMaxSerializedBytes = (size_t{1} << 31) - 64;
  void PushLocked(Outgoing out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::deque<Outgoing> queue_ ABSL_GUARDED_BY(mu_);
  // The serialized front of queue_ while its write is in flight.
  grpc::ByteBuffer write_buffer_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_SUBSCRIBE_SESSION_H_
