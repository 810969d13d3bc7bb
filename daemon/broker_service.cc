#include "daemon/broker_service.h"

#include <memory>

#include "daemon/grpc_status.h"
#include "daemon/subscribe_session.h"
#include "daemon/tail_stream.h"

namespace redrive {
namespace {

// A bidi reactor that only finishes the call with `status` (a refused
// Subscribe); it deletes itself when gRPC is done with it.
template <typename Request, typename Response>
class RefusedStream final : public grpc::ServerBidiReactor<Request, Response> {
 public:
  explicit RefusedStream(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

// A server-streaming reactor that only finishes the call with `status` (a
// refused Tail).
template <typename Response>
class RefusedWrite final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit RefusedWrite(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

// Prepares on the calling (gRPC) thread, writes on an executor thread, then
// lets `fill` copy the ids into the response and finishes the call.
// Finishes a Publish call, counting its latency and status code.
class PublishCall {
 public:
  PublishCall(grpc::ServerUnaryReactor* reactor, DaemonMetrics* metrics, PublishRpc rpc)
      : reactor_(reactor), metrics_(metrics), rpc_(static_cast<size_t>(rpc)) {}
  void Finish(const grpc::Status& status) const {
    if (metrics_ != nullptr) {
      metrics_->publish_latency[rpc_].Observe(absl::Now() - start_);
      const auto code = static_cast<size_t>(status.error_code());
      if (code < kGrpcCodes) metrics_->publish_requests[rpc_][code].Add();
    }
    reactor_->Finish(status);
  }
  grpc::ServerUnaryReactor* reactor() const { return reactor_; }

 private:
  grpc::ServerUnaryReactor* reactor_;
  DaemonMetrics* metrics_;
  size_t rpc_;
  absl::Time start_ = absl::Now();
};

template <typename Request, typename Fill>
grpc::ServerUnaryReactor* PrepareAndWrite(grpc::CallbackServerContext* context,
                                          const AdminAuth& auth, const Publisher& publisher,
                                          RedisExecutor& executor, const Request& request,
                                          const PublishCall& call, Fill fill) {
  grpc::ServerUnaryReactor* reactor = call.reactor();
  if (grpc::Status allowed = auth.Check(context->client_metadata()); !allowed.ok()) {
    call.Finish(allowed);
    return reactor;
  }
  absl::StatusOr<PreparedPublish> prepared = publisher.Prepare(request);
  if (!prepared.ok()) {
    call.Finish(ToGrpcStatus(prepared.status()));
    return reactor;
  }
  auto shared = std::make_shared<PreparedPublish>(*std::move(prepared));
  const bool queued = executor.Submit([&publisher, call, shared, fill](RedisCommander& redis) {
    absl::StatusOr<std::vector<std::string>> ids = publisher.Write(redis, *shared);
    if (!ids.ok()) {
      call.Finish(ToGrpcStatus(ids.status()));
      return;
    }
    fill(*shared, *ids);
    call.Finish(grpc::Status::OK);
  });
  if (!queued) {
    call.Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                             "redrived is overloaded or shutting down; retry later"));
  }
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* BrokerService::Publish(grpc::CallbackServerContext* context,
                                                 const v1::PublishRequest* request,
                                                 v1::PublishResponse* response) {
  const PublishCall call(context->DefaultReactor(), metrics_, PublishRpc::kPublish);
  return PrepareAndWrite(context, auth_, publisher_, executor_, *request, call,
                         [response](const PreparedPublish& p, const std::vector<std::string>& ids) {
                           response->set_entry_id(ids.front());
                           response->set_stream(p.stream);
                           response->set_correlation_id(p.correlation_ids.front());
                         });
}

grpc::ServerUnaryReactor* BrokerService::PublishBatch(grpc::CallbackServerContext* context,
                                                      const v1::PublishBatchRequest* request,
                                                      v1::PublishBatchResponse* response) {
  const PublishCall call(context->DefaultReactor(), metrics_, PublishRpc::kPublishBatch);
  return PrepareAndWrite(context, auth_, publisher_, executor_, *request, call,
                         [response](const PreparedPublish& p, const std::vector<std::string>& ids) {
                           response->set_stream(p.stream);
                           for (const std::string& id : ids) response->add_entry_ids(id);
                           for (const std::string& c : p.correlation_ids) {
                             response->add_correlation_ids(c);
                           }
                         });
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* BrokerService::Subscribe(
    grpc::CallbackServerContext* context) {
  if (grpc::Status allowed = auth_.Check(context->client_metadata()); !allowed.ok()) {
    return new RefusedStream<grpc::ByteBuffer, grpc::ByteBuffer>(allowed);
  }
  return new SubscribeSession(
      engine_, key_style_, instance_id_,
      metrics_ != nullptr ? &metrics_->grpc_streams[static_cast<size_t>(StreamKind::kSubscribe)]
                          : nullptr);
}

grpc::ServerWriteReactor<v1::TailResponse>* BrokerService::Tail(
    grpc::CallbackServerContext* context, const v1::TailRequest* request) {
  if (grpc::Status allowed = auth_.Check(context->client_metadata()); !allowed.ok()) {
    return new RefusedWrite<v1::TailResponse>(allowed);
  }
  TailStream::Options options;
  options.key_style = key_style_;
  if (metrics_ != nullptr) {
    options.open_streams = &metrics_->grpc_streams[static_cast<size_t>(StreamKind::kTail)];
  }
  return new TailStream(*request, executor_, options);
}

}  // namespace redrive
