#include "daemon/subscribe_session.h"

#include <google/protobuf/arena.h>
#include <google/protobuf/io/coded_stream.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "daemon/delivery_budget.h"
#include "daemon/grpc_status.h"
#include "daemon/logging.h"
#include "daemon/subscription.h"

namespace redrive {
namespace {

// One client message parsed onto its own arena.
struct ArenaRequest {
  ArenaRequest() : request(google::protobuf::Arena::CreateMessage<v1::SubscribeRequest>(&arena)) {}
  ArenaRequest(const ArenaRequest&) = delete;
  ArenaRequest& operator=(const ArenaRequest&) = delete;

  google::protobuf::Arena arena;
  v1::SubscribeRequest* const request;
};

}  // namespace

// The engine's handle on the session; outlives the reactor, and turns into a
// no-op once the reactor is done.
class SubscribeSession::Sink final : public SessionSink {
 public:
  explicit Sink(SubscribeSession* session) : session_(session) {}

  void Send(v1::SubscribeResponse response) override {
    absl::MutexLock lock(&mu_);
    if (session_ != nullptr) session_->Enqueue(response);
  }
  void SendDeliveries(std::string deliveries) override {
    absl::MutexLock lock(&mu_);
    if (session_ != nullptr) session_->EnqueueDeliveries(std::move(deliveries));
  }
  void Finish(absl::Status status) override {
    absl::MutexLock lock(&mu_);
    if (session_ != nullptr) session_->RequestFinish(std::move(status));
  }
  void Detach() {
    absl::MutexLock lock(&mu_);
    session_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  SubscribeSession* session_ ABSL_GUARDED_BY(mu_);
};

SubscribeSession::SubscribeSession(DeliveryEngine& engine, KeyStyle key_style,
                                   std::string instance_id, Gauge* open_streams)
    : open_(open_streams),
      engine_(engine),
      key_style_(key_style),
      instance_id_(std::move(instance_id)),
      id_(engine.NewSessionId()),
      sink_(std::make_shared<Sink>(this)) {
  StartRead(&read_buffer_);
}

void SubscribeSession::OnReadDone(bool ok) {
  if (!ok) {
    // The client half-closed or the call was cancelled: its unsettled
    // deliveries go elsewhere at once.
    engine_.Disconnect(id_);
    RequestFinish(absl::OkStatus());
    return;
  }
  // Parsed onto an arena of its own: a verbs batch goes to the engine's
  // loop as it is, and the arena is freed there in one piece.
  auto parsed_request = std::make_shared<ArenaRequest>();
  grpc::Status parsed = grpc::SerializationTraits<v1::SubscribeRequest>::Deserialize(
      &read_buffer_, parsed_request->request);
  read_buffer_.Clear();
  if (!parsed.ok()) {
    // (gRPC's parse status carries no detail for proto3 messages.)
    FailAndDisconnect(absl::InvalidArgumentError(
        "the client message does not parse as a redrive.v1.SubscribeRequest"));
    return;
  }
  const v1::SubscribeRequest* request = parsed_request->request;
  if (Handle(std::shared_ptr<const v1::SubscribeRequest>(parsed_request, request))) {
    StartRead(&read_buffer_);
  }
}

bool SubscribeSession::Handle(const std::shared_ptr<const v1::SubscribeRequest>& message) {
  const v1::SubscribeRequest& request = *message;
  switch (request.kind_case()) {
    case v1::SubscribeRequest::kRegister: {
      if (registered_) {
        FailAndDisconnect(absl::FailedPreconditionError(
            "register: this stream is already registered; open another stream to register "
            "another handler"));
        return false;
      }
      absl::StatusOr<SubscriptionSpec> spec =
          ResolveRegistration(request.register_(), key_style_, instance_id_);
      if (!spec.ok()) {
        FailAndDisconnect(spec.status());
        return false;
      }
      registered_ = true;
      engine_.Register(id_, *std::move(spec), sink_);
      return true;
    }
    case v1::SubscribeRequest::kVerbs: {
      if (!registered_) {
        FailAndDisconnect(absl::FailedPreconditionError(
            "verbs: the first message on a Subscribe stream must be register"));
        return false;
      }
      const int n = request.verbs().verbs_size();
      if (n > kMaxVerbsPerMessage) {
        FailAndDisconnect(absl::InvalidArgumentError(absl::StrCat(
            "verbs.verbs has ", n, " entries; at most ", kMaxVerbsPerMessage, " per message")));
        return false;
      }
      if (n > 0) engine_.Verbs(id_, std::shared_ptr<const v1::Verbs>(message, &request.verbs()));
      return true;
    }
    case v1::SubscribeRequest::kStop:
      if (!registered_) {
        FailAndDisconnect(absl::FailedPreconditionError(
            "stop: the first message on a Subscribe stream must be register"));
        return false;
      }
      engine_.Stop(id_);
      return true;
    case v1::SubscribeRequest::KIND_NOT_SET:
    default:
      FailAndDisconnect(
          absl::InvalidArgumentError("SubscribeRequest has no register, verbs or stop"));
      return false;
  }
}

void SubscribeSession::FailAndDisconnect(absl::Status status) {
  LogDebug(LogFields().Session(id_).Reason(status.message()), "session ends");
  if (registered_) engine_.Disconnect(id_);
  RequestFinish(std::move(status));
}

void SubscribeSession::Enqueue(const v1::SubscribeResponse& msg) {
  Outgoing out;
  out.deliveries = msg.has_deliveries();
  // Deliveries are queued as the Deliveries message, so that batches merge.
  bool serialized = out.deliveries ? msg.deliveries().SerializeToString(&out.bytes)
                                   : msg.SerializeToString(&out.bytes);
  // (The field header around a Deliveries message takes a few bytes more.)
  serialized = serialized && out.bytes.size() <= kMaxSerializedBytes;
  if (serialized && out.deliveries) {
    EnqueueDeliveries(std::move(out.bytes));
    return;
  }
  absl::MutexLock lock(&mu_);
  if (finished_ || broken_) return;
  if (!serialized) {
    // Only a message over protobuf's 2 GiB limit: a broken invariant of
    // the batch budget. What is queued before it is still written; then
    // the stream ends (Pump).
    out = Outgoing{};
    out.unserializable = true;
  }
  PushLocked(std::move(out));
}

void SubscribeSession::EnqueueDeliveries(std::string deliveries) {
  absl::MutexLock lock(&mu_);
  if (finished_ || broken_) return;
  // Merge delivery batches that have not started writing yet, within the
  // message budget (clients' default receive limit is 4 MiB).
  if (!queue_.empty() && queue_.back().deliveries && (queue_.size() > 1 || !writing_) &&
      FitsDeliveryBudget(queue_.back().bytes.size(), deliveries.size())) {
    queue_.back().bytes.append(deliveries);
    Pump();
    return;
  }
  PushLocked(Outgoing{std::move(deliveries), true});
}

void SubscribeSession::PushLocked(Outgoing out) {
  queue_.push_back(std::move(out));
  Pump();
}

void SubscribeSession::RequestFinish(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (finish_requested_) return;
  finish_requested_ = true;
  finish_status_ = ToGrpcStatus(status);
  Pump();
}

void SubscribeSession::Pump() {
  if (writing_ || finished_) return;
  if (!queue_.empty() && !broken_ && queue_.front().unserializable) {
    LogError(LogFields().Session(id_), "cannot serialize a response");
    broken_ = true;
    queue_.clear();  // no write is in flight
    if (!finish_requested_) {
      finish_requested_ = true;
      finish_status_ = grpc::Status(grpc::StatusCode::INTERNAL, "response too large");
    }
  }
  if (!queue_.empty() && !broken_) {
    // The front's bytes move into the slice that the write holds (no copy);
    // queue_.front() stays as the marker of the write in flight.
    auto* bytes = new std::string(std::move(queue_.front().bytes));
    grpc::Slice body(
        bytes->data(), bytes->size(), [](void* p) { delete static_cast<std::string*>(p); }, bytes);
    if (queue_.front().deliveries) {
      // SubscribeResponse.deliveries: field 2, length-delimited.
      uint8_t head[1 + 5];  // the tag, and a varint32 of at most 5 bytes
      head[0] = (2 << 3) | 2;
      const uint8_t* end = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(
          static_cast<uint32_t>(body.size()), head + 1);
      const grpc::Slice slices[2] = {grpc::Slice(head, static_cast<size_t>(end - head)),
                                     std::move(body)};
      write_buffer_ = grpc::ByteBuffer(slices, 2);
    } else {
      write_buffer_ = grpc::ByteBuffer(&body, 1);
    }
    writing_ = true;
    StartWrite(&write_buffer_);
    return;
  }
  if (finish_requested_) {
    finished_ = true;
    Finish(finish_status_);
  }
}

void SubscribeSession::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  queue_.pop_front();
  if (!ok) {
    // The stream is broken; OnCancel / OnReadDone(false) follow.
    broken_ = true;
    queue_.clear();
  }
  Pump();
}

void SubscribeSession::OnCancel() {
  engine_.Disconnect(id_);
  RequestFinish(absl::CancelledError("cancelled"));
}

void SubscribeSession::OnDone() {
  sink_->Detach();
  engine_.Disconnect(id_);
  delete this;
}

}  // namespace redrive
