// The baseline of the throughput benchmarks: N pre-loaded entries drained
// by a direct hiredis consumer (XREADGROUP COUNT 100 + one multi-id XACK per
// batch). Shared by stream_bench and worker_bench. Bench code.
#ifndef REDRIVE_BENCH_DIRECT_CONSUMER_H_
#define REDRIVE_BENCH_DIRECT_CONSUMER_H_

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "daemon/envelope.h"
#include "daemon/redis/connection.h"

namespace redrive_bench {

[[noreturn]] inline void DieDirect(const std::string& why) {
  std::cerr << "direct consumer: " << why << "\n";
  std::exit(1);
}

// Appends `n` FastStream envelopes of `payload` bytes to `stream`.
inline void Preload(redrive::RedisConnection& redis, const std::string& stream, int n,
                    int payload) {
  const std::string body(static_cast<size_t>(payload), 'x');
  absl::StatusOr<std::string> data = redrive::EncodeBinaryV1({{"correlation_id", "bench"}}, body);
  if (!data.ok()) DieDirect("encode");
  constexpr int kChunk = 1000;
  for (int done = 0; done < n; done += kChunk) {
    std::vector<redrive::RedisArgv> cmds;
    for (int i = done; i < std::min(n, done + kChunk); ++i) {
      cmds.push_back({"XADD", stream, "*", "__data__", *data});
    }
    if (!redis.Pipeline(cmds).ok()) DieDirect("preload failed");
  }
}

// (a) The direct consumer: the best a Redis client can do per round trip.
// Raw hiredis (no reply copies): XACK of the previous batch pipelined with
// the next XREADGROUP COUNT 100.
inline double DirectConsumer(int port, const std::string& stream, int n) {
  redisContext* c = redisConnect("127.0.0.1", port);
  if (c == nullptr || c->err != 0) DieDirect("direct connect");
  auto command = [c](const std::vector<std::string>& argv) {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const std::string& a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    redisAppendCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data());
  };
  command({"XGROUP", "CREATE", stream, "direct", "0"});
  void* reply = nullptr;
  if (redisGetReply(c, &reply) != REDIS_OK) DieDirect("group");
  freeReplyObject(reply);
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + absl::Minutes(2);
  int consumed = 0;
  std::vector<std::string> ack = {"XACK", stream, "direct"};
  while (consumed < n && absl::Now() < deadline) {
    const bool acking = ack.size() > 3;
    if (acking) command(ack);
    command({"XREADGROUP", "GROUP", "direct", "c1", "COUNT", "100", "STREAMS", stream, ">"});
    if (acking) {
      if (redisGetReply(c, &reply) != REDIS_OK) DieDirect("direct ack");
      freeReplyObject(reply);
    }
    if (redisGetReply(c, &reply) != REDIS_OK) DieDirect("direct read");
    ack.resize(3);
    const auto* r = static_cast<const redisReply*>(reply);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
      const redisReply* entries = r->element[0]->element[1];
      for (size_t i = 0; i < entries->elements; ++i) {
        const redisReply* id = entries->element[i]->element[0];
        ack.emplace_back(id->str, id->len);
      }
      consumed += static_cast<int>(entries->elements);
    }
    freeReplyObject(reply);
  }
  if (ack.size() > 3) {
    command(ack);
    if (redisGetReply(c, &reply) == REDIS_OK) freeReplyObject(reply);
  }
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  redisFree(c);
  if (consumed < n) DieDirect("direct consumer did not finish in time");
  return n / secs;
}

}  // namespace redrive_bench

#endif  // REDRIVE_BENCH_DIRECT_CONSUMER_H_
