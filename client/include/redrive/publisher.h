// redrive::Publisher: appends messages to a channel through the daemon's
// Broker.Publish / Broker.PublishBatch.
//
// Thread-safe: one Publisher may be shared by many threads.
//
//   auto publisher = redrive::Publisher::Connect("unix:/tmp/redrive/redrive.sock");
//   redrive::OutgoingMessage m;
//   m.payload = R"({"order":1})";
//   m.content_type = "application/json";
//   absl::StatusOr<redrive::Published> p = publisher->Publish("orders", m);
//
// Errors are the daemon's gRPC status as an absl::Status with the same code
// and message: INVALID_ARGUMENT (channel grammar, reserved header key),
// RESOURCE_EXHAUSTED (size limits), UNAVAILABLE (no daemon, Redis down),
// UNAUTHENTICATED (missing or wrong bearer token).
#ifndef REDRIVE_CLIENT_PUBLISHER_H_
#define REDRIVE_CLIENT_PUBLISHER_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "redrive/client.h"

namespace redrive {

// One message to publish.
struct OutgoingMessage {
  std::string payload;
  // Application headers, in order (duplicates allowed). The keys
  // correlation_id, content-type, reply_to, traceparent and tracestate are
  // reserved: use the fields below.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type;
  // Empty: the daemon generates a UUID (returned in Published).
  std::string correlation_id;
  std::string reply_to;
  // W3C trace context, carried to every delivery.
  std::string traceparent;
  std::string tracestate;
};

// What the daemon wrote for one message.
struct Published {
  // The Redis stream entry id ("<ms>-<seq>").
  std::string entry_id;
  std::string correlation_id;
};

struct PublishOptions {
  // Approximate cap on the stream length (XADD MAXLEN ~ n); 0 = none.
  uint64_t max_len = 0;
};

class Publisher {
 public:
  // `target`: "unix:/path" or "host:port". Does not wait for the connection.
  static std::unique_ptr<Publisher> Connect(const std::string& target, ClientOptions options = {});

  // Appends one message to `channel`.
  absl::StatusOr<Published> Publish(absl::string_view channel, const OutgoingMessage& message,
                                    const PublishOptions& options = {});
  // Shorthand for a payload with an optional content type.
  absl::StatusOr<Published> Publish(absl::string_view channel, absl::string_view payload,
                                    absl::string_view content_type = "");
  // Appends 1..1000 messages to `channel` atomically (all or none); the
  // results are in the order of `messages`.
  absl::StatusOr<std::vector<Published>> PublishBatch(absl::string_view channel,
                                                      const std::vector<OutgoingMessage>& messages,
                                                      const PublishOptions& options = {});

  // Waits until the channel is connected or `timeout` passes.
  bool WaitForConnected(absl::Duration timeout) { return client_->WaitForConnected(timeout); }
  Client& client() { return *client_; }

 private:
  explicit Publisher(std::unique_ptr<Client> client) : client_(std::move(client)) {}

  const std::unique_ptr<Client> client_;
};

// Fills a redrive.v1 OutgoingMessage from `message`.
void ToProto(const OutgoingMessage& message, v1::OutgoingMessage& out);

}  // namespace redrive

#endif  // REDRIVE_CLIENT_PUBLISHER_H_
