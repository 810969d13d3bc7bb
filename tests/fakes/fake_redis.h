// FakeRedis: a scripted RedisCommander for unit tests. Records every command
// it receives and answers from a queue of canned replies (or a default).
//
// Thread-compatible.
#ifndef REDRIVE_TESTS_FAKES_FAKE_REDIS_H_
#define REDRIVE_TESTS_FAKES_FAKE_REDIS_H_

#include <deque>
#include <string>
#include <vector>

#include "daemon/redis/connection.h"

namespace redrive::testing {

class FakeRedis final : public RedisCommander {
 public:
  // Every command received, as owned strings.
  std::vector<std::vector<std::string>> commands;
  // Replies handed out in order; when empty, `fallback` answers.
  std::deque<RedisReply> replies;
  RedisReply fallback = RedisReply::Status("OK");
  // When not OK, every call fails with it (connection down).
  absl::Status transport = absl::OkStatus();

  absl::StatusOr<RedisReply> Command(const RedisArgv& argv) override {
    if (!transport.ok()) return transport;
    commands.emplace_back(argv.begin(), argv.end());
    if (replies.empty()) return fallback;
    RedisReply r = std::move(replies.front());
    replies.pop_front();
    return r;
  }

  absl::StatusOr<std::vector<RedisReply>> Pipeline(absl::Span<const RedisArgv> cmds) override {
    if (!transport.ok()) return transport;
    std::vector<RedisReply> out;
    for (const RedisArgv& c : cmds) out.push_back(*Command(c));
    return out;
  }
};

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_FAKES_FAKE_REDIS_H_
