// TestSubscriber: a Subscribe stream driven from a test. A reader thread
// collects every server message; the test waits on conditions over them and
// sends verbs.
//
// Thread-safe.
#ifndef REDRIVE_TESTS_TESTING_SUBSCRIBER_H_
#define REDRIVE_TESTS_TESTING_SUBSCRIBER_H_

#include <grpcpp/client_context.h>
#include <grpcpp/support/sync_stream.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "redrive/v1/broker.grpc.pb.h"

namespace redrive::testing {

// A Register message for `channel` / `handler` (0 = the default in-flight).
inline v1::Register RegisterFor(const std::string& channel, const std::string& handler,
                                uint32_t max_in_flight = 0) {
  v1::Register r;
  r.set_channel(channel);
  r.set_handler_id(handler);
  r.set_max_in_flight(max_in_flight);
  return r;
}

class TestSubscriber {
 public:
  // Opens the stream and sends `reg` as the first message.
  TestSubscriber(v1::Broker::Stub& stub, const v1::Register& reg);
  ~TestSubscriber();  // cancels if still open

  // Waits for the Registered reply; false on timeout or stream end.
  bool WaitRegistered(absl::Duration timeout = absl::Seconds(10));
  const v1::Registered& registered() const { return registered_; }

  // Waits until at least `n` deliveries arrived in total.
  bool WaitForDeliveries(size_t n, absl::Duration timeout = absl::Seconds(15));
  // Waits until the stream ended; its status.
  bool WaitFinished(absl::Duration timeout = absl::Seconds(15));
  grpc::Status status() const;

  std::vector<v1::Delivery> deliveries() const;
  std::vector<std::string> payloads() const;
  std::vector<v1::Notice> notices() const;
  bool drained() const;
  size_t delivery_count() const;

  bool Ack(const std::vector<uint64_t>& ids);
  bool AckAll();  // every delivery received so far
  bool Send(const v1::SubscribeRequest& request);
  // Half-closes (WritesDone).
  void CloseWrites();
  // Cancels the call (a crashed client).
  void Cancel();

  // Sends `reg` again, or raw messages: for protocol-violation tests.
  static v1::SubscribeRequest AckRequest(const std::vector<uint64_t>& ids);

 private:
  void ReadLoop();

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SubscribeRequest, v1::SubscribeResponse>> stream_;
  std::thread reader_;
  absl::Mutex write_mu_;
  mutable absl::Mutex mu_;
  v1::Registered registered_;
  bool got_registered_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<v1::Delivery> deliveries_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::Notice> notices_ ABSL_GUARDED_BY(mu_);
  bool drained_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_TESTING_SUBSCRIBER_H_
