// Building RedisReply values straight from hiredis's protocol reader.
//
// hiredis parses replies into its own redisReply tree (one allocation per
// node and another per string), which RedisReply::FromHiredis then copies.
// On the delivery path (XREADGROUP replies of hundreds of entries) that
// doubled every allocation. ReplyBuilder() is a redisReplyObjectFunctions
// table that makes the reader build the RedisReply tree itself: one
// allocation per array and per string longer than the small-string buffer.
//
// Install it on a context's reader before the first reply arrives
// (`ctx->c.reader->fn = ReplyBuilder()`); the reply handed to the callbacks
// is then an opaque object to pass to TakeBuiltReply. Only for connections
// that never SUBSCRIBE or MONITOR: hiredis reads those replies as redisReply.
//
// Thread-compatible: the table is immutable; each reply belongs to its reader.
#ifndef REDRIVE_DAEMON_REDIS_HIREDIS_REPLY_H_
#define REDRIVE_DAEMON_REDIS_HIREDIS_REPLY_H_

#include "daemon/redis/reply.h"

struct redisReplyObjectFunctions;

namespace redrive {

// The table; static storage.
redisReplyObjectFunctions* ReplyBuilder();

// Moves the value out of a reply built by ReplyBuilder() (nullptr → Nil).
// The object itself stays owned by hiredis, which frees it after the callback.
RedisReply TakeBuiltReply(void* reply);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_HIREDIS_REPLY_H_
