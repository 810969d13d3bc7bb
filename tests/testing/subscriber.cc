#include "tests/testing/subscriber.h"

namespace redrive::testing {

TestSubscriber::TestSubscriber(v1::Broker::Stub& stub, const v1::Register& reg) {
  stream_ = stub.Subscribe(&context_);
  v1::SubscribeRequest first;
  *first.mutable_register_() = reg;
  Send(first);
  reader_ = std::thread([this] { ReadLoop(); });
}

TestSubscriber::~TestSubscriber() {
  context_.TryCancel();
  reader_.join();
}

void TestSubscriber::ReadLoop() {
  v1::SubscribeResponse msg;
  while (stream_->Read(&msg)) {
    absl::MutexLock lock(&mu_);
    switch (msg.kind_case()) {
      case v1::SubscribeResponse::kRegistered:
        registered_ = msg.registered();
        got_registered_ = true;
        break;
      case v1::SubscribeResponse::kDeliveries:
        for (const v1::Delivery& d : msg.deliveries().deliveries()) deliveries_.push_back(d);
        break;
      case v1::SubscribeResponse::kNotices:
        for (const v1::Notice& n : msg.notices().notices()) notices_.push_back(n);
        break;
      case v1::SubscribeResponse::kDrain:
        drained_ = true;
        break;
      default:
        break;
    }
  }
  grpc::Status status = stream_->Finish();
  absl::MutexLock lock(&mu_);
  status_ = status;
  finished_ = true;
}

bool TestSubscriber::WaitRegistered(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return got_registered_ || finished_; };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return got_registered_;
}

bool TestSubscriber::WaitForDeliveries(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return deliveries_.size() >= n || finished_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return deliveries_.size() >= n;
}

bool TestSubscriber::WaitFinished(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return finished_; };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

grpc::Status TestSubscriber::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

std::vector<v1::Delivery> TestSubscriber::deliveries() const {
  absl::MutexLock lock(&mu_);
  return deliveries_;
}

std::vector<std::string> TestSubscriber::payloads() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const v1::Delivery& d : deliveries_) out.push_back(d.payload());
  return out;
}

std::vector<v1::Notice> TestSubscriber::notices() const {
  absl::MutexLock lock(&mu_);
  return notices_;
}

bool TestSubscriber::drained() const {
  absl::MutexLock lock(&mu_);
  return drained_;
}

size_t TestSubscriber::delivery_count() const {
  absl::MutexLock lock(&mu_);
  return deliveries_.size();
}

v1::SubscribeRequest TestSubscriber::AckRequest(const std::vector<uint64_t>& ids) {
  v1::SubscribeRequest req;
  for (uint64_t id : ids) {
    v1::Verb* v = req.mutable_verbs()->add_verbs();
    v->set_delivery_id(id);
    v->mutable_ack();
  }
  return req;
}

bool TestSubscriber::Ack(const std::vector<uint64_t>& ids) {
  // An empty SubscribeRequest is a protocol error; send nothing instead.
  return ids.empty() || Send(AckRequest(ids));
}

bool TestSubscriber::AckAll() {
  std::vector<uint64_t> ids;
  for (const v1::Delivery& d : deliveries()) ids.push_back(d.delivery_id());
  return Ack(ids);
}

bool TestSubscriber::Send(const v1::SubscribeRequest& request) {
  absl::MutexLock lock(&write_mu_);
  return stream_->Write(request);
}

void TestSubscriber::CloseWrites() {
  absl::MutexLock lock(&write_mu_);
  stream_->WritesDone();
}

void TestSubscriber::Cancel() { context_.TryCancel(); }

}  // namespace redrive::testing
