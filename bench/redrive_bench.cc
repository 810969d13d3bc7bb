// redrive_bench: what a redrive job costs (R-E2, R-K). N dead letters
// (default 20,000), written as the daemon writes them, are moved back to
// their handler's retry stream
//   (a) baseline: by a direct hiredis client doing only the Redis work of a
//       move — XRANGE batches of 100, then one pipelined XADD + XDEL per
//       entry (no atomicity, no job state, no rewrite);
//   (b) by a redrived job at no rate limit: moves/s, its ratio to (a), and
//       the daemon's CPU per moved entry;
//   (c) by a redrived job at --rate (default 2,000/s) over --rate-entries
//       (default 4,000): the achieved rate as a ratio of the asked one.
//
// Usage: redrive_bench --redis-port=P --daemon=127.0.0.1:PORT --daemon-pid=PID
//                      [--dead-letters=20000] [--rate=2000] [--rate-entries=4000]
// The daemon must run with --admin-auth=disabled (bench/run.sh does). Every
// loop is bounded by a count and a deadline.
#include <grpcpp/client_context.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/bench_flags.h"
#include "bench/bench_util.h"
#include "daemon/envelope.h"
#include "daemon/retry_fields.h"
#include "daemon/stream_entry.h"
#include "redrive/client.h"

namespace {

using redrive_bench::Connect;
using redrive_bench::CpuMicros;

struct Args {
  int redis_port = 0;
  std::string daemon;
  int daemon_pid = 0;
  int dead_letters = 20000;
  int rate = 2000;
  int rate_entries = 4000;
};

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "redrive_bench: " << what << "\n";
  std::exit(1);
}

Args Parse(int argc, char** argv) {
  Args a;
  const redrive_bench::BenchFlag flags[] = {
      {"redis-port", &a.redis_port, "port of the redis-server on 127.0.0.1", 1, true},
      {"daemon", &a.daemon, "redrived's gRPC address, HOST:PORT (--admin-auth=disabled)", 0, true},
      {"daemon-pid", &a.daemon_pid, "redrived's pid (its CPU time is read)", 1, true},
      {"dead-letters", &a.dead_letters, "dead letters moved in (a) and (b)", 1},
      {"rate", &a.rate, "rate limit of the job in (c), moves/s", 1},
      {"rate-entries", &a.rate_entries, "dead letters moved in (c)", 1},
  };
  redrive_bench::ParseBenchFlagsOrExit("redrive_bench", "What a redrive job costs.", flags, argc,
                                       argv);
  return a;
}

// `n` dead letters of handler h on `channel`, as the daemon writes them
// (a JSON CloudEvents-like body, EggAI _dlq_* keys, x-redrive provenance).
void Fill(redrive::RedisConnection& redis, const std::string& channel, int n) {
  const std::string dlq = channel + ".h.dlq";
  std::vector<redrive::RedisArgv> batch;
  std::vector<redrive::FieldList> keep;
  keep.reserve(500);
  for (int i = 0; i < n; ++i) {
    redrive::StreamEntry main;
    main.id = absl::StrCat("1700000000000-", i);
    const std::string body =
        absl::StrCat(R"({"specversion":"1.0","id":")", i,
                     R"(","source":"bench","type":"order.created","data":{"order":)", i,
                     R"(,"items":[1,2,3]}})");
    main.fields = {
        {"__data__", *redrive::EncodeBinaryV1(
                         {{"correlation_id", "c"}, {"content-type", "application/json"}}, body)}};
    redrive::FailureRecord f;
    f.attempt = 3;
    f.outcome = "nack";
    f.error = "downstream timeout";
    f.consumer = "h-bench";
    f.at_ms = 1700000000000;
    redrive::DeadLetterContext ctx{"max_retries", channel, "h", channel, absl::Now()};
    keep.push_back(redrive::DeadLetterFields(main, redrive::ReadRetryState(main), f, ctx));
    redrive::RedisArgv argv = {"XADD", dlq, "*"};
    for (const auto& [k, v] : keep.back()) {
      argv.push_back(k);
      argv.push_back(v);
    }
    batch.push_back(std::move(argv));
    if (batch.size() == 500 || i == n - 1) {
      if (!redis.Pipeline(batch).ok()) Die("cannot fill the DLQ");
      batch.clear();
      keep.clear();
    }
  }
}

int64_t XLen(redrive::RedisConnection& redis, const std::string& key) {
  absl::StatusOr<redrive::RedisReply> r = redis.Command({"XLEN", key});
  return r.ok() && r->is_integer() ? r->integer : -1;
}

// (a): the Redis work of each move, pipelined, without the job's guarantees.
double Baseline(redrive::RedisConnection& redis, const std::string& channel, int n) {
  const std::string dlq = channel + ".h.dlq";
  const std::string target = channel + ".h.retry";
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + absl::Minutes(2);
  std::string from = "-";
  int moved = 0;
  while (moved < n && absl::Now() < deadline) {
    absl::StatusOr<redrive::RedisReply> r =
        redis.Command({"XRANGE", dlq, from, "+", "COUNT", "100"});
    if (!r.ok()) Die("baseline XRANGE failed");
    absl::StatusOr<std::vector<redrive::StreamEntry>> entries = redrive::ParseEntryList(*r);
    if (!entries.ok() || entries->empty()) break;
    std::vector<redrive::RedisArgv> cmds;
    for (const redrive::StreamEntry& e : *entries) {
      redrive::RedisArgv add = {"XADD", target, "*"};
      for (const auto& [k, v] : e.fields) {
        add.push_back(k);
        add.push_back(v);
      }
      cmds.push_back(std::move(add));
      cmds.push_back({"XDEL", dlq, e.id});
    }
    if (!redis.Pipeline(cmds).ok()) Die("baseline pipeline failed");
    moved += static_cast<int>(entries->size());
    from = "(" + entries->back().id;
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (moved != n) Die(absl::StrCat("baseline moved ", moved, " of ", n));
  return n / seconds;
}

struct JobResult {
  double seconds = 0;
  double cpu_us = 0;
  uint64_t moved = 0;
};

JobResult RunJob(redrive::Client& client, const std::string& channel, int rate, int pid) {
  redrive::v1::RedriveDeadLettersRequest req;
  req.mutable_handler()->set_channel(channel);
  req.mutable_handler()->set_handler_id("h");
  req.set_all(true);
  req.set_rate_per_second(static_cast<uint32_t>(rate));
  redrive::v1::RedriveDeadLettersResponse resp;
  const double cpu0 = CpuMicros(pid);
  const absl::Time start = absl::Now();
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    grpc::Status s = client.admin().RedriveDeadLetters(&ctx, req, &resp);
    if (!s.ok()) Die("RedriveDeadLetters: " + s.error_message());
  }
  redrive::v1::RedriveJob job;
  const absl::Time deadline = absl::Now() + absl::Minutes(5);
  while (absl::Now() < deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    redrive::v1::GetRedriveJobRequest get;
    get.set_job_id(resp.job().job_id());
    if (!client.admin().GetRedriveJob(&ctx, get, &job).ok()) Die("GetRedriveJob failed");
    if (job.state() != redrive::v1::RedriveJob::RUNNING) break;
    absl::SleepFor(absl::Milliseconds(2));
  }
  if (job.state() != redrive::v1::RedriveJob::SUCCEEDED) Die("the job did not succeed");
  JobResult r;
  // The job's own clock (Redis's): created → last step.
  r.seconds = static_cast<double>(job.updated_unix_ms() - job.created_unix_ms()) / 1000.0;
  if (r.seconds <= 0) r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  r.cpu_us = CpuMicros(pid) - cpu0;
  r.moved = job.moved();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = Parse(argc, argv);
  auto redis = Connect(args.redis_port);
  auto client = redrive::Client::Connect(args.daemon);
  if (!client->WaitForConnected(absl::Seconds(10))) Die("cannot reach the daemon");

  std::printf("redrive_bench: %d dead letters per run\n", args.dead_letters);
  Fill(*redis, "bench.base", args.dead_letters);
  const double base = Baseline(*redis, "bench.base", args.dead_letters);
  std::printf("(a) direct hiredis XRANGE + pipelined XADD/XDEL: %.0f moves/s\n", base);

  Fill(*redis, "bench.job", args.dead_letters);
  const JobResult job = RunJob(*client, "bench.job", 0, args.daemon_pid);
  if (static_cast<int>(job.moved) != args.dead_letters ||
      XLen(*redis, "bench.job.h.retry") != args.dead_letters) {
    Die("the job did not move every dead letter exactly once");
  }
  const double job_rate = args.dead_letters / job.seconds;
  std::printf(
      "(b) redrived job, no rate limit: %.0f moves/s (%.2f s), ratio to (a) %.2f, "
      "daemon CPU %.1f us per move\n",
      job_rate, job.seconds, job_rate / base, job.cpu_us / args.dead_letters);

  Fill(*redis, "bench.rate", args.rate_entries);
  const JobResult paced = RunJob(*client, "bench.rate", args.rate, args.daemon_pid);
  const double achieved = args.rate_entries / paced.seconds;
  std::printf("(c) redrived job at %d/s over %d: %.0f moves/s (%.2f s), achieved/asked %.3f\n",
              args.rate, args.rate_entries, achieved, paced.seconds, achieved / args.rate);
  return 0;
}
