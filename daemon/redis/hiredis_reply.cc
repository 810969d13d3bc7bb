// Where hiredis replies become RedisReply values: RedisReply::FromHiredis
// (reply.h, a copy of a redisReply tree) and ReplyBuilder (hiredis_reply.h,
// the reader builds RedisReply directly). Kept apart from reply.cc so the
// value type and its decoders (redrive_codec) build without hiredis; only
// redrive_redis includes it.
#include "daemon/redis/hiredis_reply.h"

#include <hiredis/hiredis.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "daemon/redis/reply.h"

namespace redrive {
namespace {

// The object hiredis holds for a top-level reply. hiredis itself reads one
// field of a top-level reply: `((redisReply*)reply)->type`, to spot an error
// reply no command was waiting for (e.g. "max number of clients reached").
// So `type` comes first and holds hiredis's REDIS_REPLY_* code.
struct BuiltReply {
  int type;
  RedisReply value;
};
static_assert(offsetof(BuiltReply, type) == offsetof(redisReply, type));

// Where the object of `task` goes: a new top-level reply, or its slot in the
// parent array (sized by CreateArray, so the slot's address is stable).
RedisReply* Slot(const redisReadTask* task, int hiredis_type, void** object) {
  if (task->parent == nullptr) {
    auto* top = new BuiltReply{hiredis_type, RedisReply{}};
    *object = top;
    return &top->value;
  }
  void* parent_object = task->parent->obj;
  RedisReply* parent = task->parent->parent == nullptr
                           ? &static_cast<BuiltReply*>(parent_object)->value
                           : static_cast<RedisReply*>(parent_object);
  RedisReply* slot = &parent->elements[static_cast<size_t>(task->idx)];
  *object = slot;
  return slot;
}

void* CreateString(const redisReadTask* task, char* str, size_t len) {
  void* object = nullptr;
  RedisReply* r = Slot(task, task->type, &object);
  switch (task->type) {
    case REDIS_REPLY_ERROR:
      r->type = RedisReply::Type::kError;
      break;
    case REDIS_REPLY_STATUS:
      r->type = RedisReply::Type::kStatus;
      break;
    default:
      r->type = RedisReply::Type::kString;
      break;
  }
  r->str.assign(str, len);
  return object;
}

void* CreateArray(const redisReadTask* task, int elements) {
  void* object = nullptr;
  RedisReply* r = Slot(task, REDIS_REPLY_ARRAY, &object);
  r->type = RedisReply::Type::kArray;
  r->elements.resize(elements > 0 ? static_cast<size_t>(elements) : 0);
  return object;
}

void* CreateInteger(const redisReadTask* task, long long value) {  // NOLINT(google-runtime-int)
  void* object = nullptr;
  RedisReply* r = Slot(task, REDIS_REPLY_INTEGER, &object);
  r->type = RedisReply::Type::kInteger;
  r->integer = value;
  return object;
}

void* CreateNil(const redisReadTask* task) {
  void* object = nullptr;
  Slot(task, REDIS_REPLY_NIL, &object);  // a default RedisReply is Nil
  return object;
}

// hiredis frees only top-level objects (children live inside them).
void FreeObject(void* object) { delete static_cast<BuiltReply*>(object); }

redisReplyObjectFunctions kReplyBuilder = {CreateString, CreateArray, CreateInteger, CreateNil,
                                           FreeObject};

}  // namespace

redisReplyObjectFunctions* ReplyBuilder() { return &kReplyBuilder; }

RedisReply TakeBuiltReply(void* reply) {
  if (reply == nullptr) return RedisReply::Nil();
  return std::move(static_cast<BuiltReply*>(reply)->value);
}

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
