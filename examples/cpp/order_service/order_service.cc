// The order service: publishes orders and handles them with redrive::Worker.
// A good order ships (ACK); an order with quantity 0 is invalid for good
// (Result::Terminate: straight to the dead-letter queue); an order for an
// unknown SKU fails its payment check every time (an error status: NACK,
// retried twice, then dead-lettered with the error text).
//
//   order_service [--target=unix:/tmp/redrive/redrive.sock] [--orders=10]
//
// Prints one line per outcome and a summary; exits 0 once every order is
// shipped or dead-lettered, 1 on an error or after 30 s.
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "redrive/publisher.h"
#include "redrive/worker.h"

namespace {

constexpr char kChannel[] = "orders";
constexpr char kHandler[] = "order-service";

// The order of number `i`: every 4th has quantity 0, every 5th an unknown SKU.
std::string OrderJson(int i) {
  const std::string sku = i % 5 == 4 ? "NOPE-0" : absl::StrCat("SKU-", 100 + i);
  const int qty = i % 4 == 3 ? 0 : 1 + i % 3;
  return absl::StrCat(R"({"id":)", i, R"(,"sku":")", sku, R"(","qty":)", qty, "}");
}

// The value after "key": in a flat JSON object (enough for this example).
std::string JsonField(const std::string& json, const std::string& key) {
  const std::string needle = absl::StrCat("\"", key, "\":");
  size_t at = json.find(needle);
  if (at == std::string::npos) return "";
  at += needle.size();
  size_t end = json.find_first_of(",}", at);
  std::string v = json.substr(at, end - at);
  if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

std::string DefaultTarget() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  return absl::StrCat("unix:", runtime != nullptr && *runtime != '\0' ? runtime : "/tmp",
                      "/redrive/redrive.sock");
}

}  // namespace

int main(int argc, char** argv) {
  std::string target = DefaultTarget();
  int orders = 10;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (absl::StartsWith(arg, "--target=")) {
      target = arg.substr(9);
    } else if (!absl::StartsWith(arg, "--orders=") || !absl::SimpleAtoi(arg.substr(9), &orders) ||
               orders < 1 || orders > 1000) {
      std::cerr << "usage: order_service [--target=T] [--orders=1..1000]\n";
      return 2;
    }
  }

  absl::Mutex mu;
  std::map<std::string, std::string> outcome;  // order id -> shipped / dead-lettered
  auto settle = [&](const std::string& id, const std::string& what) {
    absl::MutexLock lock(&mu);
    outcome[id] = what;
    std::cout << "order " << id << ": " << what << std::endl;
  };

  redrive::WorkerOptions options;
  options.target = target;
  options.log = [](absl::string_view) {};  // quiet: this example prints outcomes
  redrive::Worker worker(options);
  redrive::HandlerOptions handler;
  handler.max_in_flight = 8;
  redrive::v1::RetryPolicy policy;
  policy.set_max_retries(2);
  policy.set_initial_backoff_ms(100);
  handler.retry_policy = policy;
  absl::Status status = worker.Handle(
      kChannel, kHandler,
      [&](const redrive::Message& m) -> redrive::Result {
        const std::string id = JsonField(m.payload(), "id");
        if (JsonField(m.payload(), "qty") == "0") {
          settle(id, "dead-lettered (terminated: quantity 0)");
          return redrive::Result::Terminate(absl::StrCat("order ", id, ": quantity 0"),
                                            "INVALID_ORDER");
        }
        const std::string sku = JsonField(m.payload(), "sku");
        if (absl::StartsWith(sku, "NOPE")) {
          if (m.attempt() == m.max_attempts()) {
            settle(id, absl::StrCat("dead-lettered after ", m.attempt(), " attempts (unknown SKU ",
                                    sku, ")"));
          }
          return absl::NotFoundError(absl::StrCat("payment: unknown SKU ", sku));
        }
        settle(id, "shipped");
        return absl::OkStatus();
      },
      handler);
  if (status.ok()) status = worker.Start();
  if (status.ok()) status = worker.WaitReady(absl::Seconds(10));
  if (!status.ok()) {
    std::cerr << "order_service: worker at " << target << ": " << status << "\n";
    return 1;
  }

  auto publisher = redrive::Publisher::Connect(target);
  for (int i = 0; i < orders; ++i) {
    redrive::OutgoingMessage m;
    m.payload = OrderJson(i);
    m.content_type = "application/json";
    m.headers = {{"source", "order_service example"}};
    const absl::StatusOr<redrive::Published> p = publisher->Publish(kChannel, m);
    if (!p.ok()) {
      std::cerr << "order_service: publish: " << p.status() << "\n";
      return 1;
    }
  }
  std::cout << "published " << orders << " orders to '" << kChannel << "'" << std::endl;

  auto all_settled = [&] {
    absl::MutexLock lock(&mu);
    return static_cast<int>(outcome.size()) >= orders;
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!all_settled() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  worker.Stop(absl::Seconds(5));

  absl::MutexLock lock(&mu);
  int shipped = 0;
  for (const auto& [id, what] : outcome) shipped += what == "shipped" ? 1 : 0;
  std::cout << "summary: " << shipped << " shipped, " << outcome.size() - shipped
            << " dead-lettered (see: redrivectl dlq list " << kChannel << " " << kHandler << ")"
            << std::endl;
  return static_cast<int>(outcome.size()) == orders ? 0 : 1;
}
