// cluster_bench: end-to-end throughput of --channels channels, one no-op
// handler each (redrive::Worker, every delivery ACKed), while --publishers
// threads PublishBatch --messages entries per channel as fast as they can,
// all through one redrived. bench/cluster.sh runs it twice in one run,
// against a 1-master and a 3-master Redis Cluster (issue 14), and prints the
// ratio of the two rates.
//
// The clock starts when every handler is registered (its consumer group
// exists) and the first batch is sent, and stops when every message has been
// handled and its ACK written to the daemon. Prints one line
// "delivered: R msg/s" (the line bench/cluster.sh reads) and the CPU of the
// daemon and of each redis-server over that window, as % of one core.
//
// Usage: cluster_bench --daemon=TARGET [--channels=30] [--messages=10000]
//                      [--batch=100] [--publishers=2] [--payload=100]
//                      [--max-in-flight=500] [--threads=2]
//                      [--daemon-pid=PID] [--redis-pids=PID,PID,...]
// Every loop is bounded by a message count and a deadline.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/bench_flags.h"
#include "bench/bench_util.h"
#include "redrive/publisher.h"
#include "redrive/worker.h"

namespace {

struct Args {
  std::string daemon;
  int channels = 30;
  int messages = 10000;  // per channel
  int batch = 100;
  int publishers = 2;
  int payload = 100;
  int max_in_flight = 500;
  int threads = 2;
  int daemon_pid = 0;      // 0: the daemon's CPU is not reported
  std::string redis_pids;  // comma-separated; empty: none reported
};

[[noreturn]] void Die(const std::string& why) {
  std::cerr << "cluster_bench: " << why << "\n";
  std::exit(1);
}

std::string Channel(int i) { return absl::StrCat("bench.cluster.", i); }

// Publishes --messages messages to every channel whose index is
// `first` modulo `stride`, in batches of `batch`.
void Publish(const Args& a, int first, int stride, std::atomic<bool>& failed) {
  std::unique_ptr<redrive::Publisher> pub = redrive::Publisher::Connect(a.daemon);
  std::vector<redrive::OutgoingMessage> batch;
  for (int c = first; c < a.channels && !failed.load(); c += stride) {
    for (int sent = 0; sent < a.messages && !failed.load(); sent += a.batch) {
      batch.assign(std::min(a.batch, a.messages - sent), redrive::OutgoingMessage{});
      for (redrive::OutgoingMessage& m : batch) m.payload.assign(a.payload, 'x');
      absl::StatusOr<std::vector<redrive::Published>> p = pub->PublishBatch(Channel(c), batch);
      if (!p.ok()) {
        std::cerr << "cluster_bench: PublishBatch " << Channel(c) << ": " << p.status() << "\n";
        failed = true;
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  const redrive_bench::BenchFlag flags[] = {
      {"daemon", &a.daemon, "redrived's gRPC target (HOST:PORT or unix:PATH)", 0, true},
      {"channels", &a.channels, "channels, one no-op handler each", 1},
      {"messages", &a.messages, "messages published per channel", 1},
      {"batch", &a.batch, "messages per PublishBatch (at most 1000)", 1},
      {"publishers", &a.publishers, "publishing threads (channels split among them)", 1},
      {"payload", &a.payload, "payload bytes per message", 0},
      {"max-in-flight", &a.max_in_flight, "each handler's max_in_flight", 1},
      {"threads", &a.threads, "the worker's pool threads", 1},
      {"daemon-pid", &a.daemon_pid, "redrived's pid, to report its CPU (0: not)", 0},
      {"redis-pids", &a.redis_pids, "redis-server pids, comma-separated, to report their CPU"},
  };
  redrive_bench::ParseBenchFlagsOrExit(
      "cluster_bench", "Throughput of N channels with a no-op handler each, publishing meanwhile.",
      flags, argc, argv);
  if (a.batch > 1000) Die("--batch must be at most 1000");
  std::vector<int> redis_pids;
  for (absl::string_view p : absl::StrSplit(a.redis_pids, ',', absl::SkipEmpty())) {
    int pid = 0;
    if (!absl::SimpleAtoi(p, &pid) || pid <= 0) Die(absl::StrCat("bad --redis-pids: ", p));
    redis_pids.push_back(pid);
  }
  const int64_t total = static_cast<int64_t>(a.channels) * a.messages;

  std::atomic<int64_t> handled{0};
  redrive::WorkerOptions wo;
  wo.target = a.daemon;
  wo.threads = a.threads;
  // One "registered" line per handler is noise here; anything else is shown.
  wo.log = [](absl::string_view line) {
    if (!absl::StrContains(line, "registered as consumer")) {
      std::cerr << "redrive worker: " << line << "\n";
    }
  };
  redrive::Worker worker(wo);
  redrive::HandlerOptions ho;
  ho.max_in_flight = static_cast<uint32_t>(a.max_in_flight);
  ho.start.set_kind(redrive::v1::StartPosition::START_BACKLOG);
  for (int c = 0; c < a.channels; ++c) {
    const absl::Status s = worker.Handle(
        Channel(c), "bench",
        [&](const redrive::Message&) -> redrive::Result {
          handled.fetch_add(1, std::memory_order_relaxed);
          return redrive::Result::Ack();
        },
        ho);
    if (!s.ok()) Die(s.ToString());
  }
  if (!worker.Start().ok()) Die("start");
  const absl::Time registered_by = absl::Now() + absl::Seconds(30);
  while (worker.stats().registrations < static_cast<uint64_t>(a.channels) &&
         absl::Now() < registered_by) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  if (worker.stats().registrations < static_cast<uint64_t>(a.channels)) {
    Die(absl::StrCat("only ", worker.stats().registrations, " of ", a.channels,
                     " handlers registered in 30 s"));
  }

  const double daemon_cpu_before = a.daemon_pid > 0 ? redrive_bench::CpuMicros(a.daemon_pid) : 0;
  std::vector<double> redis_cpu(redis_pids.size());
  for (size_t i = 0; i < redis_pids.size(); ++i) {
    redis_cpu[i] = redrive_bench::CpuMicros(redis_pids[i]);
  }
  const double bench_cpu_before = redrive_bench::CpuMicros(getpid());
  const absl::Time start = absl::Now();
  std::atomic<bool> failed{false};
  std::vector<std::thread> publishers;
  for (int p = 0; p < a.publishers; ++p) {
    publishers.emplace_back(Publish, std::cref(a), p, a.publishers, std::ref(failed));
  }
  const absl::Time deadline = start + absl::Minutes(2);
  while (absl::Now() < deadline && !failed.load() &&
         (handled.load() < total || worker.stats().acks < static_cast<uint64_t>(total))) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  const double bench_cpu = redrive_bench::CpuMicros(getpid()) - bench_cpu_before;
  const double daemon_cpu =
      a.daemon_pid > 0 ? redrive_bench::CpuMicros(a.daemon_pid) - daemon_cpu_before : 0;
  for (size_t i = 0; i < redis_pids.size(); ++i) {
    redis_cpu[i] = redrive_bench::CpuMicros(redis_pids[i]) - redis_cpu[i];
  }
  failed = failed.load() || handled.load() < total;  // stops the publishers
  for (std::thread& t : publishers) t.join();
  worker.Stop(absl::Seconds(5));
  if (handled.load() < total) {
    Die(absl::StrCat("handled ", handled.load(), " of ", total, " in ", secs, " s"));
  }

  std::printf("messages   : %d channels x %d x %d bytes (PublishBatch of %d, %d publishers)\n",
              a.channels, a.messages, a.payload, a.batch, a.publishers);
  std::printf("delivered: %.0f msg/s (%.2f s)\n", total / secs, secs);
  // CPU over the timed window, as % of one core (user + system, all threads).
  if (a.daemon_pid > 0) {
    std::printf("CPU        : redrived %.0f%%", 100 * daemon_cpu / 1e6 / secs);
  } else {
    std::printf("CPU        :");
  }
  for (size_t i = 0; i < redis_pids.size(); ++i) {
    std::printf(", redis-server %.0f%%", 100 * redis_cpu[i] / 1e6 / secs);
  }
  std::printf(", bench process %.0f%%\n", 100 * bench_cpu / 1e6 / secs);
  return 0;
}
