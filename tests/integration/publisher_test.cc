// Publisher against a real redis-server: the exact stream entries written.
#include "daemon/publisher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/envelope_bytes.h"
#include "tests/testing/redis_inspect.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::SpecEnvelope;
using ::redrive::testing::StatusIs;
using ::redrive::testing::TestRedisServer;
using ::testing::ElementsAre;

class PublisherIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = TestRedisServer::Start();
    ASSERT_NE(server_, nullptr);
    redis_ = server_->Connect();
  }

  // Every entry of `stream` as (id, [field, value, ...]).
  std::vector<std::pair<std::string, std::vector<std::string>>> Entries(const std::string& stream) {
    std::vector<std::pair<std::string, std::vector<std::string>>> out;
    absl::StatusOr<RedisReply> r = redis_->Command({"XRANGE", stream, "-", "+"});
    EXPECT_TRUE(r.ok() && r->is_array());
    if (!r.ok()) return out;
    for (const RedisReply& e : r->elements) {
      std::vector<std::string> fields;
      for (const RedisReply& f : e.elements[1].elements) fields.push_back(f.str);
      out.emplace_back(e.elements[0].str, fields);
    }
    return out;
  }

  std::vector<std::string> Keys() { return ::redrive::testing::SortedKeys(*redis_); }

  std::unique_ptr<TestRedisServer> server_;
  std::unique_ptr<RedisConnection> redis_;
  Publisher publisher_{PublishLimits{}, KeyStyle::kEggAI, [] { return std::string("cid-1"); }};
};

TEST_F(PublisherIntegrationTest, WritesExactlyOneDataFieldWithTheSpecBytes) {
  v1::PublishRequest r;
  r.set_channel("eggai.orders");
  r.mutable_message()->set_payload("{\"order\":42}");
  r.mutable_message()->set_content_type("application/json");
  absl::StatusOr<PreparedPublish> p = publisher_.Prepare(r);
  ASSERT_THAT(p, IsOk());
  absl::StatusOr<std::vector<std::string>> ids = publisher_.Write(*redis_, *p);
  ASSERT_THAT(ids, IsOk());
  auto entries = Entries("eggai.orders");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].first, (*ids)[0]);
  EXPECT_THAT(entries[0].second,
              ElementsAre("__data__", SpecEnvelope({{"correlation_id", "cid-1"},
                                                    {"content-type", "application/json"}},
                                                   "{\"order\":42}")));
  EXPECT_THAT(Keys(), ElementsAre("eggai.orders"));
}

TEST_F(PublisherIntegrationTest, BatchWritesAllInOrder) {
  v1::PublishBatchRequest b;
  b.set_channel("orders");
  for (const char* payload : {"one", "two", "three"}) b.add_messages()->set_payload(payload);
  absl::StatusOr<PreparedPublish> p = publisher_.Prepare(b);
  ASSERT_THAT(p, IsOk());
  absl::StatusOr<std::vector<std::string>> ids = publisher_.Write(*redis_, *p);
  ASSERT_THAT(ids, IsOk());
  auto entries = Entries("orders");
  ASSERT_EQ(entries.size(), 3u);
  const char* expected[] = {"one", "two", "three"};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(entries[i].first, (*ids)[i]);
    EXPECT_THAT(entries[i].second,
                ElementsAre("__data__", SpecEnvelope({{"correlation_id", "cid-1"}}, expected[i])));
  }
}

TEST_F(PublisherIntegrationTest, MaxLenTrimsApproximately) {
  v1::PublishBatchRequest b;
  b.set_channel("orders");
  b.set_max_len(10);
  for (int i = 0; i < 500; ++i) b.add_messages()->set_payload("x");
  absl::StatusOr<PreparedPublish> p = publisher_.Prepare(b);
  ASSERT_THAT(p, IsOk());
  ASSERT_THAT(publisher_.Write(*redis_, *p), IsOk());
  absl::StatusOr<RedisReply> len = redis_->Command({"XLEN", "orders"});
  ASSERT_THAT(len, IsOk());
  // "~" trims whole radix-tree nodes (100 entries by default): far below 500.
  EXPECT_GE(len->integer, 10);
  EXPECT_LE(len->integer, 110);
}

TEST_F(PublisherIntegrationTest, ExistingNonStreamKeyIsFailedPreconditionAndUntouched) {
  ASSERT_THAT(redis_->Command({"SET", "orders", "a string"}), IsOk());
  v1::PublishBatchRequest b;
  b.set_channel("orders");
  b.add_messages()->set_payload("x");
  b.add_messages()->set_payload("y");
  absl::StatusOr<PreparedPublish> p = publisher_.Prepare(b);
  ASSERT_THAT(p, IsOk());
  EXPECT_THAT(publisher_.Write(*redis_, *p), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(redis_->Command({"GET", "orders"})->str, "a string");
}

}  // namespace
}  // namespace redrive
