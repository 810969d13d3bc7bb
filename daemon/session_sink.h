// SessionSink: the delivery engine's view of one Subscribe stream. The
// gRPC reactor (SubscribeSession) implements it; tests use
// tests/fakes/fake_session_sink.h.
#ifndef REDRIVE_DAEMON_SESSION_SINK_H_
#define REDRIVE_DAEMON_SESSION_SINK_H_

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "redrive/v1/broker.pb.h"

namespace redrive {

// The dispatcher's view of one Subscribe stream. Thread-safe, never blocks.
class SessionSink {
 public:
  virtual ~SessionSink() = default;
  // Queues a message for the client.
  virtual void Send(v1::SubscribeResponse response) = 0;
  // Queues a Deliveries message given in its wire form (each delivery
  // encoded as field 1), as the Outbox builds it. The gRPC session writes
  // the bytes as they are; this default parses them and calls Send.
  // (By value: the session takes the bytes over.)
  // NOLINTNEXTLINE(performance-unnecessary-value-param)
  virtual void SendDeliveries(std::string deliveries) {
    v1::SubscribeResponse response;
    if (!response.mutable_deliveries()->ParseFromString(deliveries)) response.clear_deliveries();
    Send(std::move(response));
  }
  // Ends the stream with `status` once queued messages are written.
  virtual void Finish(absl::Status status) = 0;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_SESSION_SINK_H_
