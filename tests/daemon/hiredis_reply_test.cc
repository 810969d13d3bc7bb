// ReplyBuilder (daemon/redis/hiredis_reply.h): hiredis's reader building
// RedisReply trees directly, checked against RedisReply::FromHiredis over
// the same bytes.
#include "daemon/redis/hiredis_reply.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <memory>
#include <string>

namespace redrive {
namespace {

struct ReaderDeleter {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};
using Reader = std::unique_ptr<redisReader, ReaderDeleter>;

// Feeds `bytes` in `chunk`-sized pieces; returns the one reply they hold.
RedisReply BuildFrom(const std::string& bytes, size_t chunk) {
  Reader reader(redisReaderCreateWithFunctions(ReplyBuilder()));
  void* reply = nullptr;
  for (size_t at = 0; at < bytes.size(); at += chunk) {
    EXPECT_EQ(redisReaderFeed(reader.get(), bytes.data() + at, std::min(chunk, bytes.size() - at)),
              REDIS_OK);
    EXPECT_EQ(redisReaderGetReply(reader.get(), &reply), REDIS_OK) << reader->errstr;
    if (reply != nullptr) {
      EXPECT_EQ(at + chunk >= bytes.size(), true) << "reply complete before the last byte";
      break;
    }
  }
  EXPECT_NE(reply, nullptr) << "no complete reply in " << bytes;
  RedisReply value = TakeBuiltReply(reply);
  if (reply != nullptr) ReplyBuilder()->freeObject(reply);
  return value;
}

RedisReply CopiedFrom(const std::string& bytes) {
  Reader reader(redisReaderCreate());
  EXPECT_EQ(redisReaderFeed(reader.get(), bytes.data(), bytes.size()), REDIS_OK);
  void* reply = nullptr;
  EXPECT_EQ(redisReaderGetReply(reader.get(), &reply), REDIS_OK);
  RedisReply value = RedisReply::FromHiredis(static_cast<const redisReply*>(reply));
  freeReplyObject(reply);
  return value;
}

// An XREADGROUP-shaped reply: [[stream, [[id, [f, v, f, v]], [id, nil]]]],
// with a payload past the small-string buffer, an empty array, an integer,
// a status and an error inside.
const char kNested[] =
    "*1\r\n*2\r\n$6\r\norders\r\n*3\r\n"
    "*2\r\n$15\r\n1733363000000-0\r\n*4\r\n$4\r\ndata\r\n$40\r\n"
    "0123456789012345678901234567890123456789\r\n$1\r\nk\r\n$0\r\n\r\n"
    "*2\r\n$15\r\n1733363000000-1\r\n$-1\r\n"
    "*5\r\n*0\r\n:-42\r\n+OK\r\n-ERR no such key\r\n*-1\r\n";

TEST(ReplyBuilderTest, BuildsTheSameTreeAsTheCopyWholeAndByteByByte) {
  const std::string bytes(kNested, sizeof(kNested) - 1);
  const RedisReply expected = CopiedFrom(bytes);
  for (size_t chunk : {bytes.size(), size_t{1}, size_t{7}}) {
    const RedisReply built = BuildFrom(bytes, chunk);
    EXPECT_EQ(built.DebugString(), expected.DebugString()) << "chunk " << chunk;
  }
}

TEST(ReplyBuilderTest, ExactShapeOfANestedReply) {
  const RedisReply r = BuildFrom(std::string(kNested, sizeof(kNested) - 1), 1000);
  ASSERT_TRUE(r.is_array());
  ASSERT_EQ(r.elements.size(), 1u);
  const RedisReply& stream = r.elements[0];
  ASSERT_EQ(stream.elements.size(), 2u);
  EXPECT_EQ(stream.elements[0].str, "orders");
  const RedisReply& entries = stream.elements[1];
  ASSERT_EQ(entries.elements.size(), 3u);
  const RedisReply& first = entries.elements[0];
  EXPECT_EQ(first.elements[0].str, "1733363000000-0");
  ASSERT_EQ(first.elements[1].elements.size(), 4u);
  EXPECT_EQ(first.elements[1].elements[1].str, "0123456789012345678901234567890123456789");
  EXPECT_TRUE(first.elements[1].elements[3].is_string());
  EXPECT_EQ(first.elements[1].elements[3].str, "");
  EXPECT_TRUE(entries.elements[1].elements[1].is_nil());
  const RedisReply& mixed = entries.elements[2];
  ASSERT_EQ(mixed.elements.size(), 5u);
  EXPECT_TRUE(mixed.elements[0].is_array());
  EXPECT_TRUE(mixed.elements[0].elements.empty());
  EXPECT_TRUE(mixed.elements[1].is_integer());
  EXPECT_EQ(mixed.elements[1].integer, -42);
  EXPECT_TRUE(mixed.elements[2].is_status());
  EXPECT_EQ(mixed.elements[2].str, "OK");
  EXPECT_TRUE(mixed.elements[3].is_error());
  EXPECT_EQ(mixed.elements[3].str, "ERR no such key");
  EXPECT_TRUE(mixed.elements[4].is_nil());
}

TEST(ReplyBuilderTest, TopLevelScalarsCarryHiredisTypeForSpontaneousErrors) {
  // hiredis reads the type of a top-level reply no command waited for.
  const std::string error = "-ERR max number of clients reached\r\n";
  Reader reader(redisReaderCreateWithFunctions(ReplyBuilder()));
  ASSERT_EQ(redisReaderFeed(reader.get(), error.data(), error.size()), REDIS_OK);
  void* reply = nullptr;
  ASSERT_EQ(redisReaderGetReply(reader.get(), &reply), REDIS_OK);
  ASSERT_NE(reply, nullptr);
  EXPECT_EQ(static_cast<redisReply*>(reply)->type, REDIS_REPLY_ERROR);
  const RedisReply value = TakeBuiltReply(reply);
  ReplyBuilder()->freeObject(reply);
  EXPECT_TRUE(value.is_error());
  EXPECT_EQ(value.str, "ERR max number of clients reached");

  EXPECT_TRUE(BuildFrom(":7\r\n", 1).is_integer());
  EXPECT_TRUE(BuildFrom("$-1\r\n", 2).is_nil());
  EXPECT_EQ(BuildFrom("+PONG\r\n", 3).str, "PONG");
  EXPECT_TRUE(TakeBuiltReply(nullptr).is_nil());
}

TEST(ReplyBuilderTest, AProtocolErrorMidArrayFreesWhatWasBuilt) {
  // Under ASan a leak or double free of the half-built tree fails the test.
  const std::string bad = "*3\r\n$3\r\nabc\r\n*2\r\n:1\r\n!bogus\r\n";
  Reader reader(redisReaderCreateWithFunctions(ReplyBuilder()));
  ASSERT_EQ(redisReaderFeed(reader.get(), bad.data(), bad.size()), REDIS_OK);
  void* reply = nullptr;
  EXPECT_EQ(redisReaderGetReply(reader.get(), &reply), REDIS_ERR);
  EXPECT_EQ(reply, nullptr);
  EXPECT_EQ(reader->err, REDIS_ERR_PROTOCOL);
}

}  // namespace
}  // namespace redrive
