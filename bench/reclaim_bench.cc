// reclaim_bench: what the retry machinery costs when many entries are
// pending (R-D7). With H handlers (default 100) each holding P pending
// entries (default 10,000), the daemon's periodic work (due-retry mover,
// orphan sweeps) must cost about what it costs with nothing pending, and
// moving D due retries per handler must cost in proportion to D.
//
//   (a) baseline: H registered handlers, nothing pending — daemon CPU, Redis
//       commands/s and Redis CPU over S seconds;
//   (b) H handlers with P entries each waiting for a retry far in the future
//       (pending under `{handler}:scheduled`, in the due zset) — same figures;
//   (c) H handlers with P entries each in flight on another (live) daemon's
//       consumer, younger than the lease — same figures;
//   (d) D entries per handler of (b) become due at once — time until all
//       H*D are in their retry streams, daemon CPU per moved retry.
// Ratios (b)/(a) and (c)/(a) are printed: ~1 means the cost does not grow
// with the pending list.
//
// Usage: reclaim_bench --redis-port=P --daemon=127.0.0.1:PORT --daemon-pid=PID
//                      [--handlers=100] [--pending=10000] [--due=100] [--seconds=10]
// Every loop is bounded by a count and a deadline.
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
#include "daemon/keys.h"
#include "daemon/redis/connection.h"
#include "daemon/retry_fields.h"
#include "redrive/client.h"

namespace {

using redrive_bench::Connect;
using redrive_bench::CpuMicros;
using redrive_bench::ProcStatus;
using redrive_bench::RedisCommands;
using redrive_bench::RedisInfo;

using Stream =
    grpc::ClientReaderWriter<redrive::v1::SubscribeRequest, redrive::v1::SubscribeResponse>;

struct Args {
  int redis_port = 0;
  std::string daemon;
  int daemon_pid = 0;
  int handlers = 100;
  int pending = 10000;
  int due = 100;
  int seconds = 10;
};

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "reclaim_bench: " << what << "\n";
  std::exit(1);
}

Args Parse(int argc, char** argv) {
  Args a;
  const redrive_bench::BenchFlag flags[] = {
      {"redis-port", &a.redis_port, "port of the redis-server on 127.0.0.1", 1, true},
      {"daemon", &a.daemon, "redrived's gRPC address, HOST:PORT", 0, true},
      {"daemon-pid", &a.daemon_pid, "redrived's pid (its CPU time is read)", 1, true},
      {"handlers", &a.handlers, "handlers (one Subscribe stream each) per phase", 0},
      {"pending", &a.pending, "pending entries per handler in (b) and (c)", 0},
      {"due", &a.due, "entries per handler made due in (d) (at most --pending)", 0},
      {"seconds", &a.seconds, "length of each measuring window in seconds", 0},
  };
  redrive_bench::ParseBenchFlagsOrExit(
      "reclaim_bench", "What the retry machinery costs when many entries are pending.", flags, argc,
      argv);
  a.due = std::min(a.due, a.pending);
  return a;
}

// Handlers registered for one phase: one Subscribe stream each.
struct Handlers {
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<Stream>> streams;

  void Register(redrive::Client& client, const std::string& prefix, int n) {
    for (int i = 0; i < n; ++i) {
      contexts.push_back(std::make_unique<grpc::ClientContext>());
      streams.push_back(client.broker().Subscribe(contexts.back().get()));
      redrive::v1::SubscribeRequest r;
      r.mutable_register_()->set_channel(absl::StrCat(prefix, i));
      r.mutable_register_()->set_handler_id("h");
      r.mutable_register_()->set_lease_ms(60000);
      r.mutable_register_()->set_max_in_flight(1);
      streams.back()->Write(r);
    }
    for (auto& st : streams) {
      redrive::v1::SubscribeResponse first;
      if (!st->Read(&first) || !first.has_registered()) Die("registration failed");
    }
  }
  ~Handlers() {
    for (auto& c : contexts) c->TryCancel();
    for (auto& st : streams) {
      redrive::v1::SubscribeResponse ignored;
      while (st->Read(&ignored)) {
      }
      st->Finish();
    }
  }
};

struct Cost {
  double daemon_cpu_pct = 0;
  double redis_cmds_per_s = 0;
  double redis_cpu_pct = 0;
};

Cost Measure(const Args& a, redrive::RedisConnection& redis) {
  const double cpu0 = CpuMicros(a.daemon_pid);
  const int64_t cmd0 = RedisCommands(redis);
  const double rcpu0 =
      RedisInfo(redis, "cpu", "used_cpu_user") + RedisInfo(redis, "cpu", "used_cpu_sys");
  absl::SleepFor(absl::Seconds(a.seconds));
  Cost c;
  c.daemon_cpu_pct = (CpuMicros(a.daemon_pid) - cpu0) / (a.seconds * 1e4);
  c.redis_cmds_per_s = static_cast<double>(RedisCommands(redis) - cmd0 - 3) / a.seconds;
  const double rcpu1 =
      RedisInfo(redis, "cpu", "used_cpu_user") + RedisInfo(redis, "cpu", "used_cpu_sys");
  c.redis_cpu_pct = (rcpu1 - rcpu0) * 100.0 / a.seconds;
  return c;
}

void Print(const char* name, const Cost& c) {
  std::printf("%s daemon CPU %6.2f %% | Redis %8.1f cmds/s, CPU %6.2f %%\n", name, c.daemon_cpu_pct,
              c.redis_cmds_per_s, c.redis_cpu_pct);
}

// P entries in `channel`, read into the group "h" by `consumer` (so they are
// pending there); the group is created at 0 first.
void Load(redrive::RedisConnection& redis, const std::string& channel, int p,
          const std::string& consumer) {
  absl::StatusOr<std::string> data = redrive::EncodeBinaryV1({}, std::string(100, 'x'));
  if (!data.ok()) Die("encode");
  constexpr int kChunk = 2000;
  for (int done = 0; done < p; done += kChunk) {
    std::vector<redrive::RedisArgv> cmds;
    for (int i = done; i < std::min(p, done + kChunk); ++i) {
      cmds.push_back({"XADD", channel, "*", "__data__", *data});
    }
    if (!redis.Pipeline(cmds).ok()) Die("XADD failed");
  }
  (void)redis.Command({"XGROUP", "CREATE", channel, "h", "0", "MKSTREAM"});
  const std::string count = absl::StrCat(p);
  if (!redis
           .Command({"XREADGROUP", "GROUP", "h", consumer, "COUNT", count, "STREAMS", channel, ">"})
           .ok()) {
    Die("XREADGROUP failed");
  }
}

// Every pending entry of `channel` also waits in the due zset, due at `due_ms`.
std::vector<std::string> Schedule(redrive::RedisConnection& redis, const std::string& channel,
                                  int64_t due_ms) {
  absl::StatusOr<redrive::RedisReply> ids = redis.Command({"XRANGE", channel, "-", "+"});
  if (!ids.ok()) Die("XRANGE failed");
  const std::string zset =
      redrive::MakeHandlerKeys(channel, "h", redrive::KeyStyle::kEggAI).due_zset;
  std::vector<std::string> members;
  std::vector<redrive::RedisArgv> cmds;
  redrive::FailureRecord f{1, "nack", "bench", "", "h-bench", due_ms};
  for (const redrive::RedisReply& e : ids->elements) {
    members.push_back(redrive::EncodeDueMember({0, e.elements[0].str, f}));
  }
  const std::string score = absl::StrCat(due_ms);
  for (const std::string& m : members) cmds.push_back({"ZADD", zset, score, m});
  for (size_t i = 0; i < cmds.size(); i += 2000) {
    std::vector<redrive::RedisArgv> chunk(
        cmds.begin() + static_cast<std::ptrdiff_t>(i),
        cmds.begin() + static_cast<std::ptrdiff_t>(std::min(cmds.size(), i + 2000)));
    if (!redis.Pipeline(chunk).ok()) Die("ZADD failed");
  }
  return members;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  auto redis = Connect(a.redis_port);
  auto client = redrive::Client::Connect(a.daemon);
  if (client == nullptr) Die("cannot connect to redrived");
  std::printf("== redrive reclaim_bench: %d handlers x %d pending, %d s per phase ==\n", a.handlers,
              a.pending, a.seconds);

  Cost base;
  {
    Handlers h;
    h.Register(*client, "bench.rc.idle.", a.handlers);
    // Each window starts right after registration, so it includes every
    // handler's first sweep and mover pass (the worst case).
    base = Measure(a, *redis);
  }
  Print("(a) nothing pending            :", base);

  // (b) entries waiting for a retry far ahead.
  const int64_t far = absl::ToUnixMillis(absl::Now() + absl::Hours(1));
  std::vector<std::vector<std::string>> members;
  for (int i = 0; i < a.handlers; ++i) {
    const std::string channel = absl::StrCat("bench.rc.sched.", i);
    Load(*redis, channel, a.pending, "h:scheduled");
    members.push_back(Schedule(*redis, channel, far));
  }
  Handlers scheduled;
  scheduled.Register(*client, "bench.rc.sched.", a.handlers);
  const Cost sched = Measure(a, *redis);
  Print("(b) pending, scheduled, not due:", sched);

  // (c) entries held by another daemon's live consumer.
  {
    for (int i = 0; i < a.handlers; ++i) {
      Load(*redis, absl::StrCat("bench.rc.live.", i), a.pending, "h-other-daemon");
    }
    Handlers live;
    live.Register(*client, "bench.rc.live.", a.handlers);
    const Cost held = Measure(a, *redis);
    Print("(c) pending on a live consumer :", held);
    std::printf(
        "    ratios to (a): daemon CPU (b) %.2f (c) %.2f; Redis commands (b) %.2f (c) %.2f\n",
        sched.daemon_cpu_pct / std::max(base.daemon_cpu_pct, 0.01),
        held.daemon_cpu_pct / std::max(base.daemon_cpu_pct, 0.01),
        sched.redis_cmds_per_s / std::max(base.redis_cmds_per_s, 0.1),
        held.redis_cmds_per_s / std::max(base.redis_cmds_per_s, 0.1));
  }

  // (d) D of each handler's scheduled entries become due now.
  const std::string now_score = "0";
  for (int i = 0; i < a.handlers; ++i) {
    const std::string zset =
        redrive::MakeHandlerKeys(absl::StrCat("bench.rc.sched.", i), "h", redrive::KeyStyle::kEggAI)
            .due_zset;
    std::vector<redrive::RedisArgv> cmds;
    for (int k = 0; k < a.due; ++k) cmds.push_back({"ZADD", zset, now_score, members[i][k]});
    if (!redis->Pipeline(cmds).ok()) Die("ZADD due failed");
  }
  const double cpu0 = CpuMicros(a.daemon_pid);
  const int64_t cmd0 = RedisCommands(*redis);
  const absl::Time start = absl::Now();
  const int64_t want = static_cast<int64_t>(a.handlers) * a.due;
  int64_t moved = 0;
  absl::Time first_moved = absl::InfiniteFuture();
  std::vector<std::string> retry_keys;  // (RedisArgv holds views: keep the strings)
  for (int i = 0; i < a.handlers; ++i) {
    retry_keys.push_back(absl::StrCat("bench.rc.sched.", i, ".h.retry"));
  }
  while (absl::Now() - start < absl::Seconds(a.seconds * 6 + 20)) {
    std::vector<redrive::RedisArgv> cmds;
    for (const std::string& key : retry_keys) cmds.push_back({"XLEN", key});
    absl::StatusOr<std::vector<redrive::RedisReply>> lens = redis->Pipeline(cmds);
    if (!lens.ok()) Die("XLEN failed");
    moved = 0;
    for (const redrive::RedisReply& r : *lens) moved += r.integer;
    if (moved > 0 && first_moved == absl::InfiniteFuture()) first_moved = absl::Now();
    if (moved >= want) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  const double cpu = CpuMicros(a.daemon_pid) - cpu0;
  const int64_t cmds = RedisCommands(*redis) - cmd0;
  const double found = absl::ToDoubleSeconds(first_moved - start);
  std::printf(
      "(d) %lld of %lld retries made due by another writer: first moved after %.2f s "
      "(discovery, <= --sweep-interval-ms), all after %.2f s (%.0f moves/s once found);\n"
      "    daemon CPU %.1f us per retry; %.1f Redis commands per retry (incl. this "
      "bench's polling)\n",
      static_cast<long long>(moved), static_cast<long long>(want), found, secs,
      moved / std::max(secs - found, 0.001), cpu / std::max<int64_t>(moved, 1),
      static_cast<double>(cmds) / std::max<int64_t>(moved, 1));
  if (moved < want) {
    absl::StatusOr<redrive::RedisReply> keys = redis->Command({"KEYS", "bench.rc.sched.0*"});
    if (keys.ok()) std::printf("keys of handler 0: %s\n", keys->DebugString().c_str());
    absl::StatusOr<redrive::RedisReply> due =
        redis->Command({"ZRANGE", "bench.rc.sched.0.h.retry.due", "0", "2", "WITHSCORES"});
    if (due.ok()) std::printf("due of handler 0: %s\n", due->DebugString().c_str());
    absl::StatusOr<redrive::RedisReply> pend =
        redis->Command({"XPENDING", "bench.rc.sched.0", "h"});
    if (pend.ok()) std::printf("pending of handler 0: %s\n", pend->DebugString().c_str());
  }
  return moved >= want ? 0 : 1;
}
