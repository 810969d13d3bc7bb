#include "redrive/client.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "grpc/health/v1/health.grpc.pb.h"

namespace redrive {
namespace {

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::unique_ptr<Client> Client::Connect(const std::string& target, ClientOptions options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (options.tls.has_value()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls->root_certs;
    ssl.pem_cert_chain = options.tls->cert_chain;
    ssl.pem_private_key = options.tls->private_key;
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls->server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls->server_name);
    }
  }
  return std::unique_ptr<Client>(
      new Client(grpc::CreateCustomChannel(target, credentials, args), std::move(options)));
}

Client::Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      broker_(v1::Broker::NewStub(channel_)),
      admin_(v1::Admin::NewStub(channel_)) {}

absl::StatusOr<v1::PublishResponse> Client::Publish(const v1::PublishRequest& request) {
  grpc::ClientContext context;
  SetDeadline(context, options_.call_timeout);
  AddCallCredentials(context);
  v1::PublishResponse response;
  grpc::Status status = broker_->Publish(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<std::string> Client::Publish(absl::string_view channel, absl::string_view payload,
                                            absl::string_view content_type) {
  v1::PublishRequest request;
  request.set_channel(std::string(channel));
  request.mutable_message()->set_payload(std::string(payload));
  request.mutable_message()->set_content_type(std::string(content_type));
  absl::StatusOr<v1::PublishResponse> response = Publish(request);
  if (!response.ok()) return response.status();
  return response->entry_id();
}

absl::StatusOr<v1::PublishBatchResponse> Client::PublishBatch(
    const v1::PublishBatchRequest& request) {
  grpc::ClientContext context;
  SetDeadline(context, options_.call_timeout);
  AddCallCredentials(context);
  v1::PublishBatchResponse response;
  grpc::Status status = broker_->PublishBatch(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<bool> Client::Serving(const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  SetDeadline(context, options_.call_timeout);
  AddCallCredentials(context);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

void Client::AddCallCredentials(grpc::ClientContext& context) const {
  if (!options_.bearer_token.empty()) {
    context.AddMetadata("authorization", "Bearer " + options_.bearer_token);
  }
}

bool Client::WaitForConnected(absl::Duration timeout) {
  return channel_->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace redrive
