// Uses the installed client the way an application would: a Publisher and a
// Worker against the daemon at argv[1]. Publishes 10 messages, handles them,
// and checks that exactly those 10 payloads were handled, once each. Also
// checks that a publish to a socket with no daemon fails with UNAVAILABLE.
#include <iostream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "redrive/publisher.h"
#include "redrive/worker.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer TARGET\n";
    return 2;
  }
  const std::string target = argv[1];

  redrive::ClientOptions client_options;
  client_options.call_timeout = absl::Seconds(5);
  auto nowhere = redrive::Publisher::Connect("unix:/nonexistent/redrive.sock", client_options);
  const absl::Status no_daemon = nowhere->Publish("orders", "x").status();
  std::cout << "publish without a daemon: " << absl::StatusCodeToString(no_daemon.code()) << "\n";
  if (no_daemon.code() != absl::StatusCode::kUnavailable) return 1;

  absl::Mutex mu;
  std::map<std::string, int> handled;
  redrive::WorkerOptions options;
  options.target = target;
  redrive::Worker worker(options);
  redrive::HandlerOptions handler_options;
  handler_options.max_in_flight = 4;
  absl::Status s = worker.Handle(
      "consumer.orders", "consumer",
      [&](const redrive::Message& m) -> redrive::Result {
        absl::MutexLock lock(&mu);
        ++handled[m.payload()];
        return absl::OkStatus();
      },
      handler_options);
  if (s.ok()) s = worker.Start();
  if (s.ok()) s = worker.WaitReady(absl::Seconds(20));
  if (!s.ok()) {
    std::cerr << "worker: " << s << "\n";
    return 1;
  }

  auto publisher = redrive::Publisher::Connect(target);
  std::map<std::string, int> want;
  for (int i = 0; i < 10; ++i) {
    const std::string payload = absl::StrCat("{\"order\":", i, "}");
    want[payload] = 1;
    const absl::StatusOr<redrive::Published> p =
        publisher->Publish("consumer.orders", payload, "application/json");
    if (!p.ok()) {
      std::cerr << "publish: " << p.status() << "\n";
      return 1;
    }
  }
  auto done = [&] {
    absl::MutexLock lock(&mu);
    return handled.size() >= want.size();
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!done() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  worker.Stop(absl::Seconds(5));
  absl::MutexLock lock(&mu);
  const redrive::WorkerStats stats = worker.stats();
  std::cout << "handled " << handled.size() << " distinct payloads, " << stats.acks << " ACKs\n";
  if (handled != want || stats.acks != want.size()) {
    std::cerr << "handled payloads differ from the 10 published\n";
    return 1;
  }
  return 0;
}
