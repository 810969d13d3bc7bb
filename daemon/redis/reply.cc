#include "daemon/redis/reply.h"

#include <hiredis/hiredis.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/redis/errors.h"

namespace redrive {

RedisReply RedisReply::FromHiredis(const redisReply* reply) {
  if (reply == nullptr) return Nil();
  switch (reply->type) {
    case REDIS_REPLY_STRING:
      return String(std::string(reply->str, reply->len));
    case REDIS_REPLY_STATUS:
      return Status(std::string(reply->str, reply->len));
    case REDIS_REPLY_ERROR:
      return Error(std::string(reply->str, reply->len));
    case REDIS_REPLY_INTEGER:
      return Integer(reply->integer);
    case REDIS_REPLY_ARRAY: {
      std::vector<RedisReply> elements;
      elements.reserve(reply->elements);
      for (size_t i = 0; i < reply->elements; ++i) {
        elements.push_back(FromHiredis(reply->element[i]));
      }
      return Array(std::move(elements));
    }
    case REDIS_REPLY_NIL:
    default:
      return Nil();
  }
}

absl::Status RedisReply::ErrorStatus() const { return RedisErrorStatus(*this); }

std::string RedisReply::DebugString() const {
  switch (type) {
    case Type::kNil:
      return "(nil)";
    case Type::kStatus:
      return absl::StrCat("+", str);
    case Type::kError:
      return absl::StrCat("-", str);
    case Type::kInteger:
      return absl::StrCat(":", integer);
    case Type::kString:
      return absl::StrCat("\"", str, "\"");
    case Type::kArray:
      return absl::StrCat("[",
                          absl::StrJoin(elements, ", ",
                                        [](std::string* out, const RedisReply& r) {
                                          out->append(r.DebugString());
                                        }),
                          "]");
  }
  return "?";
}

}  // namespace redrive
