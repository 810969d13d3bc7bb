// stream_bench: delivery throughput and latency of redrived against a direct
// hiredis consumer, on the same Redis, in the same run (R-K1, R-K2).
//
//   (a) direct: XREADGROUP COUNT 100 + one multi-id XACK per batch (pipelined
//       with the next read) drains N pre-loaded entries;
//   (b) redrived: the same N entries, delivered over gRPC to one Subscribe
//       stream whose client ACKs every batch as it arrives;
//   (c) live: publishers call Publish at a fixed offered rate while a
//       subscriber ACKs; publish-to-ACK latency percentiles.
// Prints messages/s for (a) and (b), their ratio, p50/p99/max latency, the
// daemon's CPU microseconds per message during (b) and its peak RSS.
//
// Usage: stream_bench --redis-port=P --daemon=127.0.0.1:PORT --daemon-pid=PID
//                     [--messages=200000] [--payload=100] [--rate=10000]
//                     [--seconds=5]
// Every loop is bounded by a message count and a deadline.
#include <grpcpp/client_context.h>
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/bench_flags.h"
#include "bench/bench_util.h"
#include "bench/direct_consumer.h"
#include "daemon/envelope.h"
#include "daemon/redis/connection.h"
#include "redrive/client.h"

namespace {

using redrive_bench::Connect;
using redrive_bench::CpuMicros;
using redrive_bench::DirectConsumer;
using redrive_bench::Preload;
using redrive_bench::ProcStatus;
using redrive_bench::RedisCommands;
using redrive_bench::RedisInfo;

struct Args {
  int redis_port = 0;
  std::string daemon;
  int daemon_pid = 0;
  int messages = 200000;
  int payload = 100;
  int rate = 10000;
  int seconds = 5;
  int idle_handlers = 1000;
  int idle_seconds = 10;
};

Args Parse(int argc, char** argv) {
  Args a;
  const redrive_bench::BenchFlag flags[] = {
      {"redis-port", &a.redis_port, "port of the redis-server on 127.0.0.1", 1, true},
      {"daemon", &a.daemon, "redrived's gRPC address, HOST:PORT", 0, true},
      {"daemon-pid", &a.daemon_pid, "redrived's pid (its CPU time and RSS are read)", 1, true},
      {"messages", &a.messages, "entries drained in (a) and (b)", 1},
      {"payload", &a.payload, "payload bytes per message", 0},
      {"rate", &a.rate, "offered messages/s in (c)", 1},
      {"seconds", &a.seconds, "length of (c) in seconds", 1},
      {"idle-handlers", &a.idle_handlers, "idle Subscribe streams in (d)", 0},
      {"idle-seconds", &a.idle_seconds, "length of each window of (d) in seconds", 1},
  };
  redrive_bench::ParseBenchFlagsOrExit(
      "stream_bench", "Delivery throughput and latency of redrived against a direct consumer.",
      flags, argc, argv);
  return a;
}

[[noreturn]] void Die(const std::string& why) {
  std::cerr << "stream_bench: " << why << "\n";
  std::exit(1);
}

using Stream =
    grpc::ClientReaderWriter<redrive::v1::SubscribeRequest, redrive::v1::SubscribeResponse>;

// A Subscribe client that ACKs each batch as it arrives. `on_delivery` runs
// for every delivery (before its ACK is written).
struct AckingSubscriber {
  template <typename F>
  static int Run(redrive::Client& client, const redrive::v1::Register& reg, int expect,
                 absl::Time deadline, F on_delivery, std::atomic<bool>* registered) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(deadline));
    std::unique_ptr<Stream> stream = client.broker().Subscribe(&ctx);
    redrive::v1::SubscribeRequest first;
    *first.mutable_register_() = reg;
    stream->Write(first);
    redrive::v1::SubscribeResponse msg;
    int received = 0;
    while (received < expect && stream->Read(&msg)) {
      if (msg.has_registered()) {
        registered->store(true);
        continue;
      }
      if (!msg.has_deliveries()) continue;
      redrive::v1::SubscribeRequest acks;
      for (const redrive::v1::Delivery& d : msg.deliveries().deliveries()) {
        on_delivery(d);
        redrive::v1::Verb* v = acks.mutable_verbs()->add_verbs();
        v->set_delivery_id(d.delivery_id());
        v->mutable_ack();
        ++received;
      }
      stream->Write(acks);
    }
    stream->WritesDone();
    ctx.TryCancel();
    stream->Finish();
    return received;
  }
};

}  // namespace

int main(int argc, char** argv) {
  const Args args = Parse(argc, argv);
  auto redis = Connect(args.redis_port);
  auto client = redrive::Client::Connect(args.daemon);
  if (!client->WaitForConnected(absl::Seconds(10))) Die("daemon not reachable");
  const int n = args.messages;

  // (a) and (b) drain the same pre-loaded entries, each with its own group.
  std::cout << "preloading " << n << " entries of " << args.payload << " bytes...\n";
  Preload(*redis, "bench.drain", n, args.payload);
  const double direct = DirectConsumer(args.redis_port, "bench.drain", n);

  redrive::v1::Register reg;
  reg.set_channel("bench.drain");
  reg.set_handler_id("via-daemon");
  reg.set_max_in_flight(2000);
  reg.mutable_start()->set_kind(redrive::v1::StartPosition::START_BACKLOG);
  std::atomic<bool> registered{false};
  const double cpu_before = CpuMicros(args.daemon_pid);
  const absl::Time start = absl::Now();
  const int got = AckingSubscriber::Run(
      *client, reg, n, start + absl::Minutes(2), [](const redrive::v1::Delivery&) {}, &registered);
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  // Let the daemon flush its last XACKs before reading its CPU time.
  const absl::Time settle = absl::Now() + absl::Seconds(10);
  while (absl::Now() < settle) {
    absl::StatusOr<redrive::RedisReply> p =
        redis->Command({"XPENDING", "bench.drain", "via-daemon"});
    if (p.ok() && p->is_array() && !p->elements.empty() && p->elements[0].integer == 0) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  const double cpu_us = CpuMicros(args.daemon_pid) - cpu_before;
  if (got < n) Die(absl::StrCat("redrived delivered ", got, " of ", n));
  const double via_daemon = n / secs;

  // (c) live: fixed offered rate through Publish, latency to ACK.
  const int live_total = args.rate * args.seconds;
  std::vector<int64_t> latencies;
  latencies.reserve(static_cast<size_t>(live_total));
  absl::Mutex lat_mu;
  std::atomic<bool> live_registered{false};
  redrive::v1::Register live;
  live.set_channel("bench.live");
  live.set_handler_id("live");
  live.set_max_in_flight(1000);
  const absl::Time live_deadline = absl::Now() + absl::Seconds(args.seconds + 30);
  std::thread subscriber([&] {
    AckingSubscriber::Run(
        *client, live, live_total, live_deadline,
        [&](const redrive::v1::Delivery& d) {
          int64_t sent = 0;
          if (absl::SimpleAtoi(d.payload().substr(0, d.payload().find(' ')), &sent)) {
            absl::MutexLock lock(&lat_mu);
            latencies.push_back(absl::GetCurrentTimeNanos() - sent);
          }
        },
        &live_registered);
  });
  const absl::Time reg_deadline = absl::Now() + absl::Seconds(10);
  while (!live_registered.load() && absl::Now() < reg_deadline)
    absl::SleepFor(absl::Milliseconds(1));
  // Publishers append straight to the stream (XADD of a FastStream
  // envelope), so the figure is the daemon's delivery latency, not the
  // publishing client's.
  constexpr int kPublishers = 2;
  std::vector<std::thread> publishers;
  const std::string pad(static_cast<size_t>(std::max(0, args.payload - 20)), 'p');
  const absl::Time live_start = absl::Now();
  for (int p = 0; p < kPublishers; ++p) {
    publishers.emplace_back([&, p] {
      auto conn = Connect(args.redis_port);
      const int mine = live_total / kPublishers;
      const absl::Duration gap = absl::Seconds(1) * kPublishers / args.rate;
      absl::Time next = live_start + gap * p / kPublishers;
      for (int i = 0; i < mine && absl::Now() < live_deadline; ++i) {
        const absl::Time now = absl::Now();
        if (next > now) absl::SleepFor(next - now);
        next += gap;
        absl::StatusOr<std::string> data = redrive::EncodeBinaryV1(
            {{"correlation_id", "live"}}, absl::StrCat(absl::GetCurrentTimeNanos(), " ", pad));
        (void)conn->Command({"XADD", "bench.live", "*", "__data__", *data});
      }
    });
  }
  for (std::thread& t : publishers) t.join();
  const double offered = live_total / absl::ToDoubleSeconds(absl::Now() - live_start);
  subscriber.join();
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double q) {
    if (latencies.empty()) return 0.0;
    return latencies[std::min(latencies.size() - 1, static_cast<size_t>(q * latencies.size()))] /
           1e3;
  };

  std::printf("\n== redrive stream_bench (N=%d, payload %d B) ==\n", n, args.payload);
  std::printf("(a) direct hiredis consumer   : %10.0f msg/s\n", direct);
  std::printf("(b) redrived -> gRPC -> ack   : %10.0f msg/s\n", via_daemon);
  std::printf("    ratio (b)/(a)             : %10.2f   (target >= 0.40)\n", via_daemon / direct);
  std::printf("    daemon CPU per message    : %10.2f us (target <= 10)\n", cpu_us / n);
  std::printf("(c) live at %d msg/s offered (achieved %.0f), %zu delivered\n", args.rate, offered,
              latencies.size());
  std::printf("    (latency: XADD by the publisher to the subscriber's ACK)\n");
  std::printf("    publish-to-ack p50        : %10.0f us\n", pct(0.50));
  std::printf("    publish-to-ack p99        : %10.0f us (target <= 2000)\n", pct(0.99));
  std::printf("    publish-to-ack max        : %10.0f us\n", pct(1.0));
  std::printf("    daemon peak RSS           : %s\n", ProcStatus(args.daemon_pid, "VmHWM").c_str());

  // (d) K3: the cost of idle handlers. Each is its own Subscribe stream on
  // its own channel; nothing is published.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < args.idle_handlers; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    streams.push_back(client->broker().Subscribe(contexts.back().get()));
    redrive::v1::SubscribeRequest r;
    r.mutable_register_()->set_channel(absl::StrCat("bench.idle.", i));
    r.mutable_register_()->set_handler_id("idle");
    streams.back()->Write(r);
  }
  int registered_idle = 0;
  for (auto& st : streams) {
    redrive::v1::SubscribeResponse first;
    if (st->Read(&first) && first.has_registered()) ++registered_idle;
  }
  const double idle_cpu_before = CpuMicros(args.daemon_pid);
  const int64_t commands_before = RedisCommands(*redis);
  absl::SleepFor(absl::Seconds(args.idle_seconds));
  const double idle_cpu = CpuMicros(args.daemon_pid) - idle_cpu_before;
  const int64_t idle_commands = RedisCommands(*redis) - commands_before - 1;
  std::printf("(d) %d idle handlers registered (%d streams), over %d s:\n", registered_idle,
              args.idle_handlers, args.idle_seconds);
  std::printf("    daemon CPU                : %10.2f %% of one core\n",
              idle_cpu / (args.idle_seconds * 1e4));
  std::printf("    Redis commands per second : %10.1f\n",
              static_cast<double>(idle_commands) / args.idle_seconds);
  std::printf("    daemon threads            : %s\n",
              ProcStatus(args.daemon_pid, "Threads").c_str());
  // The window above holds every handler's first sweep and due-retry poll;
  // a second one shows the steady state.
  const double steady_cpu_before = CpuMicros(args.daemon_pid);
  const int64_t steady_before = RedisCommands(*redis);
  absl::SleepFor(absl::Seconds(args.idle_seconds));
  std::printf("    next %d s (steady state)  : %.2f %% CPU, %.1f Redis commands/s\n",
              args.idle_seconds,
              (CpuMicros(args.daemon_pid) - steady_cpu_before) / (args.idle_seconds * 1e4),
              static_cast<double>(RedisCommands(*redis) - steady_before - 1) / args.idle_seconds);
  for (auto& c : contexts) c->TryCancel();
  for (auto& st : streams) {
    redrive::v1::SubscribeResponse ignored;
    while (st->Read(&ignored)) {
    }
    st->Finish();
  }
  return 0;
}
