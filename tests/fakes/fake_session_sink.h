// FakeSessionSink: a SessionSink that records every message the dispatcher
// queues for a Subscribe stream and how the stream was finished, with
// helpers that wait (bounded) for deliveries or the end of the stream.
//
// Thread-safe: the dispatcher calls it on the loop thread, tests read and
// wait from their own thread.
#ifndef REDRIVE_TESTS_FAKES_FAKE_SESSION_SINK_H_
#define REDRIVE_TESTS_FAKES_FAKE_SESSION_SINK_H_

#include <cstddef>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/dispatcher.h"
#include "redrive/v1/broker.pb.h"

namespace redrive::testing {

class FakeSessionSink final : public SessionSink {
 public:
  void Send(v1::SubscribeResponse response) override {
    absl::MutexLock lock(&mu_);
    if (finish_calls_ > 0) ++sends_after_finish_;
    responses_.push_back(std::move(response));
  }

  void Finish(absl::Status status) override {
    absl::MutexLock lock(&mu_);
    ++finish_calls_;
    if (!status_.has_value()) status_ = std::move(status);
  }

  // Every message, in order.
  std::vector<v1::SubscribeResponse> responses() const {
    absl::MutexLock lock(&mu_);
    return responses_;
  }

  std::vector<v1::Registered> registered() const {
    absl::MutexLock lock(&mu_);
    std::vector<v1::Registered> out;
    for (const v1::SubscribeResponse& r : responses_) {
      if (r.has_registered()) out.push_back(r.registered());
    }
    return out;
  }

  // Every delivery of every Deliveries message, in order.
  std::vector<v1::Delivery> deliveries() const {
    absl::MutexLock lock(&mu_);
    std::vector<v1::Delivery> out;
    for (const v1::SubscribeResponse& r : responses_) {
      for (const v1::Delivery& d : r.deliveries().deliveries()) out.push_back(d);
    }
    return out;
  }

  // Every notice of every Notices message, in order.
  std::vector<v1::Notice> notices() const {
    absl::MutexLock lock(&mu_);
    std::vector<v1::Notice> out;
    for (const v1::SubscribeResponse& r : responses_) {
      for (const v1::Notice& n : r.notices().notices()) out.push_back(n);
    }
    return out;
  }

  std::vector<v1::Drain> drains() const {
    absl::MutexLock lock(&mu_);
    std::vector<v1::Drain> out;
    for (const v1::SubscribeResponse& r : responses_) {
      if (r.has_drain()) out.push_back(r.drain());
    }
    return out;
  }

  // The status of the first Finish, if any.
  std::optional<absl::Status> status() const {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  int finish_calls() const {
    absl::MutexLock lock(&mu_);
    return finish_calls_;
  }
  // Messages queued after Finish (a contract violation).
  int sends_after_finish() const {
    absl::MutexLock lock(&mu_);
    return sends_after_finish_;
  }

  // Waits until at least `n` deliveries arrived in total.
  bool WaitForDeliveries(size_t n, absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      size_t seen = 0;
      for (const v1::SubscribeResponse& r : responses_) {
        seen += static_cast<size_t>(r.deliveries().deliveries_size());
      }
      return seen >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }

  // Waits until Finish was called.
  bool WaitFinished(absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    auto finished = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return finish_calls_ > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&finished), timeout);
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<v1::SubscribeResponse> responses_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> status_ ABSL_GUARDED_BY(mu_);
  int finish_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int sends_after_finish_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_FAKES_FAKE_SESSION_SINK_H_
