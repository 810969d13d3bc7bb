#include "daemon/subscribe_session.h"

#include <grpcpp/impl/codegen/proto_utils.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "daemon/delivery_budget.h"
#include "daemon/grpc_status.h"
#include "daemon/logging.h"
#include "daemon/subscription.h"

namespace redrive {

// The engine's handle on the session; outlives the reactor, and turns into a
// no-op once the reactor is done.
class SubscribeSession::Sink final : public SessionSink {
 public:
  explicit Sink(SubscribeSession* session) : session_(session) {}

  void Send(v1::SubscribeResponse response) override {
    absl::MutexLock lock(&mu_);
    if (session_ != nullptr) session_->Enqueue(std::move(response));
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
  request_.Clear();
  grpc::Status parsed =
      grpc::SerializationTraits<v1::SubscribeRequest>::Deserialize(&read_buffer_, &request_);
  read_buffer_.Clear();
  if (!parsed.ok()) {
    // (gRPC's parse status carries no detail for proto3 messages.)
    FailAndDisconnect(absl::InvalidArgumentError(
        "the client message does not parse as a redrive.v1.SubscribeRequest"));
    return;
  }
  if (Handle(request_)) StartRead(&read_buffer_);
}

bool SubscribeSession::Handle(const v1::SubscribeRequest& request) {
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
      if (n > 0) engine_.Verbs(id_, std::make_shared<const v1::Verbs>(request.verbs()));
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

void SubscribeSession::Enqueue(v1::SubscribeResponse msg) {
  absl::MutexLock lock(&mu_);
  if (finished_ || broken_) return;
  // Merge delivery batches that have not started writing yet, within the
  // message budget (clients' default receive limit is 4 MiB).
  const size_t bytes = msg.ByteSizeLong();
  if (msg.has_deliveries() && !queue_.empty() && queue_.back().message.has_deliveries() &&
      (queue_.size() > 1 || !writing_) && FitsDeliveryBudget(queue_.back().bytes, bytes)) {
    Outgoing& back = queue_.back();
    auto* into = back.message.mutable_deliveries()->mutable_deliveries();
    for (v1::Delivery& d : *msg.mutable_deliveries()->mutable_deliveries()) {
      into->Add(std::move(d));
    }
    back.bytes += bytes;
  } else {
    queue_.push_back(Outgoing{std::move(msg), bytes});
  }
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
  if (!queue_.empty() && !broken_) {
    bool own_buffer = false;
    write_buffer_.Clear();
    grpc::Status serialized = grpc::SerializationTraits<v1::SubscribeResponse>::Serialize(
        queue_.front().message, &write_buffer_, &own_buffer);
    if (!serialized.ok()) {
      // Only a message over protobuf's 2 GiB limit: a broken invariant of
      // the batch budget. End the stream rather than send half of it.
      LogError(LogFields().Session(id_).Error(serialized.error_message()),
               "cannot serialize a response");
      broken_ = true;
      queue_.clear();
      if (!finish_requested_) {
        finish_requested_ = true;
        finish_status_ = grpc::Status(grpc::StatusCode::INTERNAL, "response too large");
      }
    } else {
      writing_ = true;
      StartWrite(&write_buffer_);
      return;
    }
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
