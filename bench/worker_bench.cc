// worker_bench: end-to-end throughput of a no-op handler through
// redrive::Worker (client/) against a direct hiredis consumer, on the same
// Redis, in the same run (issue 13: Worker >= 0.6 x direct).
//
//   (a) direct: XREADGROUP COUNT 100 + one multi-id XACK per batch drains N
//       pre-loaded entries (bench/direct_consumer.h);
//   (b) worker: the same N entries (another group of the same stream),
//       through redrived to a redrive::Worker whose handler returns OK at
//       once; timed from Start() until every entry is ACKed in Redis.
// Runs interleaved rounds (a fresh stream each) and prints messages/s for
// both and the median of the rounds' ratios.
//
// Usage: worker_bench --redis-port=P --daemon=TARGET [--messages=100000]
//                     [--payload=100] [--max-in-flight=2000] [--threads=2]
//                     [--rounds=3]
// Every loop is bounded by a message count and a deadline.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "bench/bench_flags.h"
#include "bench/bench_util.h"
#include "bench/direct_consumer.h"
#include "redrive/worker.h"

namespace {

struct Args {
  int redis_port = 0;
  std::string daemon;
  int messages = 100000;
  int payload = 100;
  int max_in_flight = 2000;
  int threads = 2;
  int rounds = 3;
  int daemon_pid = 0;  // 0: the daemon's CPU is not reported
};

[[noreturn]] void Die(const std::string& why) {
  std::cerr << "worker_bench: " << why << "\n";
  std::exit(1);
}

int64_t Pending(redrive::RedisConnection& redis, const std::string& stream,
                const std::string& group) {
  absl::StatusOr<redrive::RedisReply> p = redis.Command({"XPENDING", stream, group});
  return p.ok() && p->is_array() && !p->elements.empty() ? p->elements[0].integer : -1;
}

// One run of (b) on `stream`; fills the worker's and the daemon's CPU
// microseconds. Returns messages/s.
double RunWorker(const Args& a, redrive::RedisConnection& redis, const std::string& stream,
                 double& worker_cpu, double& daemon_cpu, redrive::WorkerStats& stats) {
  const int n = a.messages;
  std::atomic<int> handled{0};
  redrive::WorkerOptions wo;
  wo.target = a.daemon;
  wo.threads = a.threads;
  redrive::Worker worker(wo);
  redrive::HandlerOptions ho;
  ho.max_in_flight = static_cast<uint32_t>(a.max_in_flight);
  ho.start.set_kind(redrive::v1::StartPosition::START_BACKLOG);
  const absl::Status s = worker.Handle(
      stream, "via-worker",
      [&](const redrive::Message&) -> redrive::Result {
        handled.fetch_add(1, std::memory_order_relaxed);
        return redrive::Result::Ack();
      },
      ho);
  if (!s.ok()) Die(s.ToString());
  const double worker_cpu_before = redrive_bench::CpuMicros(getpid());
  const double daemon_cpu_before = a.daemon_pid > 0 ? redrive_bench::CpuMicros(a.daemon_pid) : 0;
  const absl::Time start = absl::Now();
  if (!worker.Start().ok()) Die("start");
  const absl::Time deadline = start + absl::Minutes(2);
  while (absl::Now() < deadline &&
         (handled.load() < n || Pending(redis, stream, "via-worker") != 0)) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  worker_cpu = redrive_bench::CpuMicros(getpid()) - worker_cpu_before;
  daemon_cpu = a.daemon_pid > 0 ? redrive_bench::CpuMicros(a.daemon_pid) - daemon_cpu_before : 0;
  worker.Stop(absl::Seconds(5));
  if (handled.load() < n) Die(absl::StrCat("the worker handled ", handled.load(), " of ", n));
  stats = worker.stats();
  return n / secs;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

std::string Runs(const std::vector<double>& v, double scale, int precision) {
  std::string out;
  for (double x : v) {
    absl::StrAppend(&out, out.empty() ? "" : " ", absl::StrFormat("%.*f", precision, x * scale));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  const redrive_bench::BenchFlag flags[] = {
      {"redis-port", &a.redis_port, "port of the redis-server on 127.0.0.1", 1, true},
      {"daemon", &a.daemon, "redrived's gRPC target (HOST:PORT or unix:PATH)", 0, true},
      {"messages", &a.messages, "entries drained in (a) and (b), per round", 1},
      {"payload", &a.payload, "payload bytes per message", 0},
      {"max-in-flight", &a.max_in_flight, "the worker handler's max_in_flight", 1},
      {"threads", &a.threads, "the worker's pool threads", 1},
      {"rounds", &a.rounds, "interleaved rounds of (a) and (b); medians are reported", 1},
      {"daemon-pid", &a.daemon_pid, "redrived's pid, to report its CPU per message (0: not)", 0},
  };
  redrive_bench::ParseBenchFlagsOrExit(
      "worker_bench", "No-op handler throughput of redrive::Worker against a direct consumer.",
      flags, argc, argv);
  auto redis = redrive_bench::Connect(a.redis_port);
  const int n = a.messages;

  // Interleaved rounds, medians: the machine is shared and its load moves
  // (as bench/clients/python.sh and node.sh do). Each round drains a fresh
  // stream twice: (a) then (b), each in its own consumer group.
  std::vector<double> direct, via_worker, ratios, worker_cpu, daemon_cpu;
  redrive::WorkerStats stats;
  for (int round = 0; round < a.rounds; ++round) {
    const std::string stream = absl::StrCat("bench.worker.", round);
    redrive_bench::Preload(*redis, stream, n, a.payload);
    direct.push_back(redrive_bench::DirectConsumer(a.redis_port, stream, n));
    double wcpu = 0;
    double dcpu = 0;
    via_worker.push_back(RunWorker(a, *redis, stream, wcpu, dcpu, stats));
    ratios.push_back(via_worker.back() / direct.back());
    worker_cpu.push_back(wcpu / n);
    daemon_cpu.push_back(dcpu / n);
    (void)redis->Command({"DEL", stream});
    std::printf("round %d: direct %.0f msg/s, worker %.0f msg/s, ratio %.2f\n", round + 1,
                direct.back(), via_worker.back(), ratios.back());
  }

  std::printf("messages                       : %d x %d bytes, %d rounds\n", n, a.payload,
              a.rounds);
  std::printf("(a) direct hiredis consumer    : %10.0f msg/s median\n", Median(direct));
  std::printf(
      "(b) redrive::Worker, no-op     : %10.0f msg/s median (max_in_flight %d, %d threads)\n",
      Median(via_worker), a.max_in_flight, a.threads);
  std::printf(
      "ratio (b)/(a)                  : %10.2f median of the rounds' ratios (%s; target >= 0.60)\n",
      Median(ratios), Runs(ratios, 1, 2).c_str());
  // Process CPU (all threads, user + system) during (b), per message: the
  // worker's includes this loop's XPENDING polls every 2 ms.
  std::printf("worker process CPU per message : %10.2f us median\n", Median(worker_cpu));
  if (a.daemon_pid > 0) {
    std::printf("daemon CPU per message         : %10.2f us median\n", Median(daemon_cpu));
  }
  std::printf("verbs per write (last round)   : %10.1f\n",
              stats.verb_writes > 0 ? static_cast<double>(stats.acks) / stats.verb_writes : 0.0);
  return 0;
}
