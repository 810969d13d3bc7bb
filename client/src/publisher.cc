#include "redrive/publisher.h"

namespace redrive {

void ToProto(const OutgoingMessage& message, v1::OutgoingMessage& out) {
  out.set_payload(message.payload);
  for (const auto& [key, value] : message.headers) {
    v1::Header* h = out.add_headers();
    h->set_key(key);
    h->set_value(value);
  }
  out.set_content_type(message.content_type);
  out.set_correlation_id(message.correlation_id);
  out.set_reply_to(message.reply_to);
  if (!message.traceparent.empty() || !message.tracestate.empty()) {
    out.mutable_trace()->set_traceparent(message.traceparent);
    out.mutable_trace()->set_tracestate(message.tracestate);
  }
}

std::unique_ptr<Publisher> Publisher::Connect(const std::string& target, ClientOptions options) {
  return std::unique_ptr<Publisher>(new Publisher(Client::Connect(target, std::move(options))));
}

absl::StatusOr<Published> Publisher::Publish(absl::string_view channel,
                                             const OutgoingMessage& message,
                                             const PublishOptions& options) {
  v1::PublishRequest request;
  request.set_channel(std::string(channel));
  request.set_max_len(options.max_len);
  ToProto(message, *request.mutable_message());
  absl::StatusOr<v1::PublishResponse> response = client_->Publish(request);
  if (!response.ok()) return response.status();
  return Published{response->entry_id(), response->correlation_id()};
}

absl::StatusOr<Published> Publisher::Publish(absl::string_view channel, absl::string_view payload,
                                             absl::string_view content_type) {
  OutgoingMessage message;
  message.payload = std::string(payload);
  message.content_type = std::string(content_type);
  return Publish(channel, message);
}

absl::StatusOr<std::vector<Published>> Publisher::PublishBatch(
    absl::string_view channel, const std::vector<OutgoingMessage>& messages,
    const PublishOptions& options) {
  v1::PublishBatchRequest request;
  request.set_channel(std::string(channel));
  request.set_max_len(options.max_len);
  for (const OutgoingMessage& m : messages) ToProto(m, *request.add_messages());
  absl::StatusOr<v1::PublishBatchResponse> response = client_->PublishBatch(request);
  if (!response.ok()) return response.status();
  std::vector<Published> out;
  out.reserve(response->entry_ids_size());
  for (int i = 0; i < response->entry_ids_size(); ++i) {
    out.push_back(Published{response->entry_ids(i), i < response->correlation_ids_size()
                                                        ? response->correlation_ids(i)
                                                        : std::string()});
  }
  return out;
}

}  // namespace redrive
