// Helpers shared by the benchmarks: process CPU and memory from /proc and
// Redis counters from INFO. Linux only; bench code, not product code.
#ifndef REDRIVE_BENCH_BENCH_UTIL_H_
#define REDRIVE_BENCH_BENCH_UTIL_H_

#include <unistd.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/redis/connection.h"

namespace redrive_bench {

inline std::unique_ptr<redrive::RedisConnection> Connect(int port) {
  redrive::RedisConnectionOptions o;
  o.address.host = "127.0.0.1";
  o.address.port = port;
  o.command_timeout = absl::Seconds(30);
  return std::make_unique<redrive::RedisConnection>(o);
}

// utime + stime of `pid` in microseconds.
inline double CpuMicros(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  std::getline(in, line);
  const size_t close = line.rfind(')');
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> fields;
  std::string f;
  while (rest >> f) fields.push_back(f);
  // fields[0] is state (field 3); utime is field 14, stime field 15.
  const double ticks = std::stod(fields[11]) + std::stod(fields[12]);
  return ticks * 1e6 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// A field of /proc/PID/status ("VmHWM", "Threads"), trimmed.
inline std::string ProcStatus(int pid, absl::string_view field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  const std::string prefix = absl::StrCat(field, ":");
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      const size_t start = line.find_first_not_of(" \t", prefix.size());
      return start == std::string::npos ? "" : line.substr(start);
    }
  }
  return "?";
}

// A numeric field of Redis INFO `section`, e.g. ("stats",
// "total_commands_processed") or ("cpu", "used_cpu_user"); -1 if missing.
inline double RedisInfo(redrive::RedisConnection& redis, const char* section, const char* field) {
  absl::StatusOr<redrive::RedisReply> r = redis.Command({"INFO", section});
  if (!r.ok()) return -1;
  const std::string key = absl::StrCat(field, ":");
  const size_t at = r->str.find(key);
  double v = -1;
  if (at != std::string::npos) {
    (void)absl::SimpleAtod(r->str.substr(at + key.size(), r->str.find('\r', at) - at - key.size()),
                           &v);
  }
  return v;
}

// Commands Redis has processed so far (INFO stats total_commands_processed).
inline int64_t RedisCommands(redrive::RedisConnection& redis) {
  absl::StatusOr<redrive::RedisReply> r = redis.Command({"INFO", "stats"});
  if (!r.ok()) return -1;
  const std::string key = "total_commands_processed:";
  const size_t at = r->str.find(key);
  int64_t n = -1;
  if (at != std::string::npos) {
    (void)absl::SimpleAtoi(r->str.substr(at + key.size(), r->str.find('\r', at) - at - key.size()),
                           &n);
  }
  return n;
}

}  // namespace redrive_bench

#endif  // REDRIVE_BENCH_BENCH_UTIL_H_
