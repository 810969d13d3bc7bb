// RedisReply::FromHiredis: the one place a hiredis reply becomes a RedisReply
// (reply.h). Kept apart from reply.cc so the value type and its decoders
// (redrive_codec) build without hiredis; only redrive_redis includes it.
#include <hiredis/hiredis.h>

#include <string>
#include <utility>
#include <vector>

#include "daemon/redis/reply.h"

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

}  // namespace redrive
