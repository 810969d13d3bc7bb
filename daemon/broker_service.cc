#include "daemon/broker_service.h"

#include <memory>

#include "absl/container/inlined_vector.h"
#include "daemon/grpc_status.h"
#include "daemon/logging.h"
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

// The trace context of the call's `traceparent` / `tracestate` metadata
// (what OpenTelemetry-instrumented clients send).
MetadataTrace CallTrace(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  absl::InlinedVector<absl::string_view, 1> parents;
  absl::InlinedVector<absl::string_view, 1> states;
  for (auto [it, end] = metadata.equal_range("traceparent"); it != end; ++it) {
    parents.emplace_back(it->second.data(), it->second.size());
  }
  if (parents.empty()) return {};
  for (auto [it, end] = metadata.equal_range("tracestate"); it != end; ++it) {
    states.emplace_back(it->second.data(), it->second.size());
  }
  return TraceFromMetadata(parents, states);
}

const v1::OutgoingMessage* FirstMessage(const v1::PublishRequest& r) {
  return r.has_message() ? &r.message() : nullptr;
}
const v1::OutgoingMessage* FirstMessage(const v1::PublishBatchRequest& r) {
  return r.messages_size() > 0 ? &r.messages(0) : nullptr;
}

// The trace id log lines about the call carry: its (first) message's.
template <typename Request>
absl::string_view FirstTraceId(const Request& request, const v1::TraceContext& call_trace) {
  const v1::OutgoingMessage* m = FirstMessage(request);
  return TraceIdOf(m == nullptr ? call_trace.traceparent()
                                : EffectiveTrace(*m, call_trace).traceparent());
}

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

// Prepares on the calling (gRPC) thread, writes on an executor thread, then
// lets `fill` copy the ids into the response and finishes the call.
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
  MetadataTrace metadata = CallTrace(*context);
  if (!metadata.ignored.empty()) {
    LogDebug(LogFields().Channel(request.channel()).Peer(context->peer()).Reason(metadata.ignored),
             "publish: trace context in the call's metadata ignored");
  }
  absl::StatusOr<PreparedPublish> prepared = publisher.Prepare(request, metadata.trace);
  if (!prepared.ok()) {
    LogDebug(LogFields()
                 .Channel(request.channel())
                 .TraceId(FirstTraceId(request, metadata.trace))
                 .Error(prepared.status().message()),
             "publish refused");
    call.Finish(ToGrpcStatus(prepared.status()));
    return reactor;
  }
  auto shared = std::make_shared<PreparedPublish>(*std::move(prepared));
  // `request` stays valid until the call is finished.
  const bool queued =
      executor.Submit([&publisher, &request, call, shared, fill,
                       call_trace = std::move(metadata.trace)](RedisCommander& redis) {
        absl::StatusOr<std::vector<std::string>> ids = publisher.Write(redis, *shared);
        if (!ids.ok()) {
          LogDebug(LogFields()
                       .Channel(request.channel())
                       .Stream(shared->stream)
                       .TraceId(FirstTraceId(request, call_trace))
                       .Error(ids.status().message()),
                   "publish of {} messages failed", shared->envelopes.size());
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
