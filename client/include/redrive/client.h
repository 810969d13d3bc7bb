// redrive C++ client: a thin, typed layer over the redrive.v1 gRPC API.
//
// Thread-safe: one Client may be shared by many threads (gRPC channels and
// stubs are thread-safe).
//
//   auto client = redrive::Client::Connect("unix:/run/redrive/redrive.sock");
//   absl::StatusOr<std::string> id = client->Publish("orders", "{\"id\":1}");
#ifndef REDRIVE_CLIENT_CLIENT_H_
#define REDRIVE_CLIENT_CLIENT_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "redrive/v1/admin.grpc.pb.h"
#include "redrive/v1/broker.grpc.pb.h"

namespace redrive {

// TLS to a daemon started with --tls-cert. PEM contents, not file names.
struct ClientTlsOptions {
  // CA certificates the server certificate must chain to; empty: gRPC's
  // default roots (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH or its bundled ones).
  std::string root_certs;
  // A client certificate for a daemon that requires one (--tls-client-ca):
  // both or neither.
  std::string cert_chain;
  std::string private_key;
  // The name checked against the server certificate (and sent as SNI and
  // :authority) instead of the target's host; empty: the target's host.
  std::string server_name;
};

struct ClientOptions {
  // Per-call deadline for unary calls.
  absl::Duration call_timeout = absl::Seconds(10);
  // TLS instead of plaintext when set.
  std::optional<ClientTlsOptions> tls;
  // Sent as `authorization: Bearer <token>` on every call when not empty
  // (a daemon started with --broker-auth=token, or the Admin token).
  std::string bearer_token;
};

class Client {
 public:
  // `target` is a gRPC target: "127.0.0.1:50051", "unix:/path", ... Does not
  // wait for the connection.
  static std::unique_ptr<Client> Connect(const std::string& target, ClientOptions options = {});

  // Publishes one message; returns the entry id. The gRPC status is returned
  // as an absl::Status with the same code and message.
  absl::StatusOr<v1::PublishResponse> Publish(const v1::PublishRequest& request);
  absl::StatusOr<std::string> Publish(absl::string_view channel, absl::string_view payload,
                                      absl::string_view content_type = "");
  absl::StatusOr<v1::PublishBatchResponse> PublishBatch(const v1::PublishBatchRequest& request);

  // grpc.health.v1 check of `service` ("" = the whole server): true when
  // SERVING.
  absl::StatusOr<bool> Serving(const std::string& service = "");

  // Waits until the channel is connected or `timeout` passes.
  bool WaitForConnected(absl::Duration timeout);

  // Adds the call metadata of `options().bearer_token` to `context`; every
  // call made through broker() or admin() by hand needs it when a token is set.
  void AddCallCredentials(grpc::ClientContext& context) const;
  const ClientOptions& options() const { return options_; }

  v1::Broker::Stub& broker() { return *broker_; }
  v1::Admin::Stub& admin() { return *admin_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options);

  const ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Broker::Stub> broker_;
  std::unique_ptr<v1::Admin::Stub> admin_;
};

// grpc::Status → absl::Status (same code and message).
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace redrive

#endif  // REDRIVE_CLIENT_CLIENT_H_
