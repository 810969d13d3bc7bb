// RedisReply: an owned, copyable value tree of one Redis (RESP2) reply.
//
// Converted from hiredis's redisReply at the connection boundary so the rest
// of the daemon (and its fakes) never touch hiredis memory.
//
// Thread-compatible value type.
#ifndef REDRIVE_DAEMON_REDIS_REPLY_H_
#define REDRIVE_DAEMON_REDIS_REPLY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

struct redisReply;

namespace redrive {

struct RedisReply {
  enum class Type { kNil, kStatus, kError, kInteger, kString, kArray };

  Type type = Type::kNil;
  std::string str;  // kStatus, kError, kString
  int64_t integer = 0;
  std::vector<RedisReply> elements;  // kArray

  static RedisReply Nil() { return RedisReply{}; }
  static RedisReply Status(std::string s) { return {Type::kStatus, std::move(s), 0, {}}; }
  static RedisReply Error(std::string s) { return {Type::kError, std::move(s), 0, {}}; }
  static RedisReply Integer(int64_t n) { return {Type::kInteger, {}, n, {}}; }
  static RedisReply String(std::string s) { return {Type::kString, std::move(s), 0, {}}; }
  static RedisReply Array(std::vector<RedisReply> e) { return {Type::kArray, {}, 0, std::move(e)}; }

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
  bool is_string() const { return type == Type::kString; }
  bool is_array() const { return type == Type::kArray; }
  bool is_integer() const { return type == Type::kInteger; }
  bool is_status() const { return type == Type::kStatus; }

  // Deep-copies a hiredis reply (nullptr → Nil). Defined in hiredis_reply.cc
  // (redrive_redis): this header and reply.cc need no hiredis.
  static RedisReply FromHiredis(const redisReply* reply);

  // A Redis error reply as a Status (RedisErrorStatus, errors.h); OK for
  // other replies.
  absl::Status ErrorStatus() const;

  // For debugging and test failure messages.
  std::string DebugString() const;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_REPLY_H_
