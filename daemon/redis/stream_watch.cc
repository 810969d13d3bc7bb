#include "daemon/redis/stream_watch.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/redis/errors.h"

namespace redrive {

void RedisStreamWatchOps::LastId(const std::string& stream, OpCallback<std::string> done) {
  commands_.Send({"XREVRANGE", stream, "+", "-", "COUNT", "1"},
                 [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                   reply = CheckReply(std::move(reply));
                   if (!reply.ok()) return done(reply.status());
                   if (!reply->is_array()) {
                     return done(absl::InternalError("XREVRANGE: not an array"));
                   }
                   if (reply->elements.empty()) return done(std::string("0-0"));
                   const RedisReply& e = reply->elements[0];
                   if (!e.is_array() || e.elements.empty() || !e.elements[0].is_string()) {
                     return done(absl::InternalError("XREVRANGE: malformed entry"));
                   }
                   done(e.elements[0].str);
                 });
}

void RedisStreamWatchOps::WaitForEntries(const std::vector<StreamCursor>& after,
                                         absl::Duration block,
                                         OpCallback<std::vector<StreamCursor>> done) {
  const std::string block_ms = absl::StrCat(absl::ToInt64Milliseconds(block));
  RedisArgv argv = {"XREAD", "COUNT", "1", "BLOCK", block_ms, "STREAMS"};
  argv.reserve(argv.size() + 2 * after.size());
  for (const StreamCursor& c : after) argv.push_back(c.stream);
  for (const StreamCursor& c : after) argv.push_back(c.id);
  blocking_.Send(
      argv,
      [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
        reply = CheckReply(std::move(reply));
        if (!reply.ok()) return done(reply.status());
        // [[stream, [[id, fields]]], ...] or nil (timed out).
        std::vector<StreamCursor> active;
        if (reply->is_array()) {
          for (const RedisReply& s : reply->elements) {
            if (!s.is_array() || s.elements.size() != 2) continue;
            std::string first;
            const RedisReply& entries = s.elements[1];
            if (entries.is_array() && !entries.elements.empty() &&
                !entries.elements[0].elements.empty()) {
              first = entries.elements[0].elements[0].str;
            }
            active.push_back(StreamCursor{s.elements[0].str, std::move(first)});
          }
        }
        done(std::move(active));
      },
      block);
}

void RedisStreamWatchOps::Unblock(int64_t client_id, OpCallback<bool> done) {
  commands_.Send({"CLIENT", "UNBLOCK", absl::StrCat(client_id)},
                 [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                   reply = CheckReply(std::move(reply));
                   if (!reply.ok()) return done(reply.status());
                   done(reply->is_integer() && reply->integer == 1);
                 });
}

}  // namespace redrive
