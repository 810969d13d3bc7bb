// End to end: the real redrived binary, a real redis-server, gRPC from C++.
#include <gmock/gmock.h>
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/redis/errors.h"
#include "daemon/redis/keyspace.h"
#include "daemon/redis/streams.h"
#include "redrive/client.h"
#include "tests/testing/daemon_process.h"
#include "tests/testing/envelope_bytes.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wait.h"

namespace redrive {
namespace {

using ::redrive::testing::DaemonProcess;
using ::redrive::testing::IsOk;
using ::redrive::testing::SpecEnvelope;
using ::redrive::testing::StatusIs;
using ::redrive::testing::TakeOk;
using ::redrive::testing::TestRedisServer;
using ::redrive::testing::WaitFor;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class DaemonTest : public ::testing::Test {
 protected:
  void StartAll(std::vector<std::string> extra_args = {}) {
    redis_ = TestRedisServer::Start();
    ASSERT_NE(redis_, nullptr);
    DaemonProcess::Options o;
    o.redis_url = redis_->url();
    o.extra_args = std::move(extra_args);
    o.unix_socket = true;
    daemon_ = DaemonProcess::Start(o);
    ASSERT_NE(daemon_, nullptr);
    client_ = Client::Connect(daemon_->address());
    ASSERT_TRUE(client_->WaitForConnected(absl::Seconds(10)));
  }

  bool ServingIs(bool expected) {
    for (const char* service : {"", "redrive.v1.Broker", "redrive.v1.Admin"}) {
      absl::StatusOr<bool> s = client_->Serving(service);
      if (!s.ok() || *s != expected) return false;
    }
    return true;
  }

  std::vector<std::string> StreamFields(const std::string& stream, const std::string& id) {
    auto conn = redis_->Connect();
    absl::StatusOr<RedisReply> r = conn->Command({"XRANGE", stream, id, id});
    std::vector<std::string> out;
    if (!r.ok() || r->elements.size() != 1) return out;
    for (const RedisReply& f : r->elements[0].elements[1].elements) out.push_back(f.str);
    return out;
  }

  std::unique_ptr<TestRedisServer> redis_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<Client> client_;
};

TEST_F(DaemonTest, PublishWritesTheExactEntry) {
  StartAll();
  v1::PublishRequest r;
  r.set_channel("eggai.orders");
  r.mutable_message()->set_payload("{\"id\":7,\"name\":\"caf\xc3\xa9\"}");
  r.mutable_message()->set_content_type("application/json");
  r.mutable_message()->set_correlation_id("corr-7");
  auto* h = r.mutable_message()->add_headers();
  h->set_key("tenant");
  h->set_value("gr\xc3\xbcn");
  absl::StatusOr<v1::PublishResponse> resp = client_->Publish(r);
  ASSERT_THAT(resp, IsOk());
  EXPECT_EQ(resp->stream(), "eggai.orders");
  EXPECT_EQ(resp->correlation_id(), "corr-7");
  EXPECT_THAT(StreamFields("eggai.orders", resp->entry_id()),
              ElementsAre("__data__", SpecEnvelope({{"correlation_id", "corr-7"},
                                                    {"content-type", "application/json"},
                                                    {"tenant", "gr\xc3\xbcn"}},
                                                   "{\"id\":7,\"name\":\"caf\xc3\xa9\"}")));
}

TEST_F(DaemonTest, PublishBatchReturnsIdsInOrderAndGeneratesCorrelationIds) {
  StartAll();
  v1::PublishBatchRequest b;
  b.set_channel("orders");
  for (int i = 0; i < 3; ++i) b.add_messages()->set_payload(absl::StrCat("m", i));
  absl::StatusOr<v1::PublishBatchResponse> resp = client_->PublishBatch(b);
  ASSERT_THAT(resp, IsOk());
  ASSERT_EQ(resp->entry_ids_size(), 3);
  ASSERT_EQ(resp->correlation_ids_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(resp->correlation_ids(i).size(), 36u);
    EXPECT_THAT(StreamFields("orders", resp->entry_ids(i)),
                ElementsAre("__data__", SpecEnvelope({{"correlation_id", resp->correlation_ids(i)}},
                                                     absl::StrCat("m", i))));
  }
  auto conn = redis_->Connect();
  EXPECT_EQ(conn->Command({"XLEN", "orders"})->integer, 3);
}

TEST_F(DaemonTest, HealthFollowsRedis) {
  StartAll();
  ASSERT_TRUE(WaitFor([&] { return ServingIs(true); }));
  redis_->Kill();
  ASSERT_TRUE(WaitFor([&] { return ServingIs(false); }));
  EXPECT_THAT(client_->Publish("orders", "while-down"), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_TRUE(redis_->Restart());
  ASSERT_TRUE(WaitFor([&] { return ServingIs(true); }));
  // Publishing works again once the pool has reconnected.
  absl::StatusOr<std::string> id = absl::UnavailableError("not tried");
  ASSERT_TRUE(WaitFor([&] {
    id = client_->Publish("orders", "after-restart");
    return id.ok();
  })) << id.status();
  auto conn = redis_->Connect();
  EXPECT_EQ(conn->Command({"XLEN", "orders"})->integer, 1);
}

TEST_F(DaemonTest, BadInputGetsExactStatusAndDaemonKeepsServing) {
  StartAll({"--max-payload-bytes=64", "--max-batch-messages=2"});
  using C = absl::StatusCode;
  EXPECT_THAT(client_->Publish("", "x"), StatusIs(C::kInvalidArgument, HasSubstr("channel")));
  EXPECT_THAT(client_->Publish("has space", "x"), StatusIs(C::kInvalidArgument));
  EXPECT_THAT(client_->Publish("orders.retry", "x"), StatusIs(C::kInvalidArgument));
  EXPECT_THAT(client_->Publish("orders", std::string(65, 'x')),
              StatusIs(C::kResourceExhausted, HasSubstr("message.payload")));
  v1::PublishRequest no_message;
  no_message.set_channel("orders");
  EXPECT_THAT(client_->Publish(no_message), StatusIs(C::kInvalidArgument));
  v1::PublishBatchRequest b;
  b.set_channel("orders");
  EXPECT_THAT(client_->PublishBatch(b), StatusIs(C::kInvalidArgument));
  for (int i = 0; i < 3; ++i) b.add_messages()->set_payload("x");
  EXPECT_THAT(client_->PublishBatch(b), StatusIs(C::kResourceExhausted));
  auto conn = redis_->Connect();
  ASSERT_THAT(conn->Command({"SET", "not-a-stream", "v"}), IsOk());
  EXPECT_THAT(client_->Publish("not-a-stream", "x"), StatusIs(C::kFailedPrecondition));
  // Nothing of the above was written, and the daemon still works.
  EXPECT_EQ(conn->Command({"EXISTS", "orders"})->integer, 0);
  EXPECT_THAT(client_->Publish("orders", "fine"), IsOk());
  EXPECT_EQ(conn->Command({"XLEN", "orders"})->integer, 1);
}

TEST_F(DaemonTest, AdminRpcsAreRefusedWithoutAConfiguredToken) {
  StartAll();  // no --admin-token-file, no REDRIVE_ADMIN_TOKEN
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer some-token-0123456789");
  v1::ListHandlersRequest req;
  v1::ListHandlersResponse resp;
  EXPECT_EQ(client_->admin().ListHandlers(&ctx, req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(client_->Publish("orders", "still serving"), IsOk());
}

TEST_F(DaemonTest, ServesOnUnixSocketToo) {
  StartAll();
  auto unix_client = Client::Connect(daemon_->unix_address());
  absl::StatusOr<std::string> id = unix_client->Publish("orders", "via-unix");
  ASSERT_THAT(id, IsOk());
  EXPECT_THAT(StreamFields("orders", *id), ElementsAre("__data__", HasSubstr("via-unix")));
}

TEST_F(DaemonTest, HealthListenerServesOnlyHealth) {
  StartAll({"--health-listen=127.0.0.1:0"});
  ASSERT_FALSE(daemon_->health_address().empty());
  auto probe = Client::Connect(daemon_->health_address());
  ASSERT_TRUE(WaitFor([&] {
    absl::StatusOr<bool> s = probe->Serving("redrive.v1.Broker");
    return s.ok() && *s;
  }));
  // The probe port does not expose the API.
  EXPECT_THAT(probe->Publish("orders", "x"), StatusIs(absl::StatusCode::kUnimplemented));
  redis_->Kill();
  ASSERT_TRUE(WaitFor([&] {
    absl::StatusOr<bool> s = probe->Serving();
    return s.ok() && !*s;
  }));
}

TEST_F(DaemonTest, SigtermExitsCleanly) {
  StartAll();
  ASSERT_THAT(client_->Publish("orders", "x"), IsOk());
  const int status = daemon_->Terminate();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_THAT(daemon_->Log(), HasSubstr("redrived stopped"));
}

TEST(EmbeddedRedisTest, RunsWithoutConfiguredRedisAndCleansUp) {
  DaemonProcess::Options o;  // no redis_url: embedded
  auto daemon = DaemonProcess::Start(o);
  ASSERT_NE(daemon, nullptr);
  EXPECT_THAT(daemon->redis(), HasSubstr("unix://"));
  EXPECT_THAT(daemon->Log(), HasSubstr("embedded redis-server started"));
  auto client = Client::Connect(daemon->address());
  ASSERT_TRUE(WaitFor([&] {
    absl::StatusOr<bool> s = client->Serving();
    return s.ok() && *s;
  }));
  ASSERT_THAT(client->Publish("orders", "hello"), IsOk());
  // The embedded server is private: find its directory from the address.
  std::string path = daemon->redis().substr(strlen("unix://"));
  path = path.substr(0, path.find('?'));
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  EXPECT_TRUE(std::filesystem::exists(path));
  const int status = daemon->Terminate();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
  EXPECT_THAT(daemon->Log(), HasSubstr("embedded redis-server stopped"));
}

// Runs redrived with `args`, returning (exit code, stdout+stderr).
std::pair<int, std::string> RunDaemon(const std::string& args) {
  const std::string out = ::testing::TempDir() + "/redrived-cli.txt";
  const int status = std::system(
      absl::StrCat("timeout 60 ", REDRIVE_DAEMON_BINARY, " ", args, " >", out, " 2>&1").c_str());
  std::ifstream in(out);
  std::stringstream s;
  s << in.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, s.str()};
}

TEST(DaemonCliTest, HelpDocumentsOptionsAndBadFlagsExitTwo) {
  auto [code, text] = RunDaemon("--help");
  EXPECT_EQ(code, 0);
  EXPECT_THAT(text, HasSubstr("--redis-url  (REDRIVE_REDIS_URL)"));
  EXPECT_THAT(text, HasSubstr("--grpc-listen  (REDRIVE_GRPC_LISTEN)"));
  std::tie(code, text) = RunDaemon("--no-such-flag=1");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(text, HasSubstr("unknown option --no-such-flag"));
  std::tie(code, text) = RunDaemon("--redis-url=ftp://x");
  EXPECT_EQ(code, 2);
}

// A Redis Cluster node given as a plain redis:// URL: redrived runs in
// cluster mode with it as the seed (the cluster key template by default),
// and refuses what a cluster cannot do (the eggai template, db != 0).
TEST(DaemonCliTest, APlainUrlToAClusterNodeRunsInClusterMode) {
  TestRedisServer::Options ro;
  ro.extra_args = {"--cluster-enabled", "yes"};
  auto redis = TestRedisServer::Start(ro);
  ASSERT_NE(redis, nullptr);
  // A one-node cluster serving every slot.
  ASSERT_THAT(CheckReply(redis->Connect()->Command({"CLUSTER", "ADDSLOTSRANGE", "0", "16383"})),
              IsOk());
  ASSERT_TRUE(WaitFor([&] {
    absl::StatusOr<RedisReply> info = redis->Connect()->Command({"CLUSTER", "INFO"});
    return info.ok() && absl::StrContains(info->str, "cluster_state:ok");
  }));
  const std::string url = absl::StrCat("--redis-url=redis://127.0.0.1:", redis->port());
  auto [code, text] =
      RunDaemon(absl::StrCat(url, "/0 --grpc-listen=127.0.0.1:0 --key-template=eggai"));
  EXPECT_EQ(code, 1) << text;
  EXPECT_THAT(text, HasSubstr("--key-template: --key-template=eggai cannot be used on a Redis "
                              "Cluster: EggAI's key names carry no {hash tag}"));
  std::tie(code, text) = RunDaemon(absl::StrCat(url, "/2 --grpc-listen=127.0.0.1:0"));
  EXPECT_EQ(code, 1) << text;
  EXPECT_THAT(text, HasSubstr("this Redis is a Redis Cluster node, which has only database 0, "
                              "got /2"));

  DaemonProcess::Options o;
  o.redis_url = absl::StrCat("redis://127.0.0.1:", redis->port(), "/0");
  auto daemon = DaemonProcess::Start(o);
  ASSERT_NE(daemon, nullptr);
  auto client = Client::Connect(daemon->address());
  ASSERT_TRUE(WaitFor([&] { return client->Publish("orders", "x").ok(); })) << daemon->Log();
  EXPECT_THAT(daemon->Log(), HasSubstr("is a Redis Cluster node: routing by slot with the "
                                       "cluster key template"));
  // The cluster template's name, not EggAI's.
  auto inspect = redis->Connect();
  EXPECT_EQ(TakeOk(XLen(*inspect, "{orders}")), 1);
  EXPECT_EQ(TakeOk(KeyType(*inspect, "orders")), "none");
  absl::StatusOr<bool> serving = client->Serving();
  ASSERT_TRUE(serving.ok()) << serving.status();
  EXPECT_TRUE(*serving);
}

// Redis unreachable at start-up and a cluster node when it comes: readiness
// stays NOT_SERVING, with the reason logged.
TEST(DaemonCliTest, ReadinessRefusesAClusterNodeThatAppearsLater) {
  TestRedisServer::Options ro;
  ro.extra_args = {"--cluster-enabled", "yes"};
  auto redis = TestRedisServer::Start(ro);
  ASSERT_NE(redis, nullptr);
  redis->Kill();
  DaemonProcess::Options o;
  o.redis_url = absl::StrCat("redis://127.0.0.1:", redis->port(), "/0");
  auto daemon = DaemonProcess::Start(o);
  ASSERT_NE(daemon, nullptr);
  ASSERT_TRUE(redis->Restart());
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(daemon->Log(),
                             "readiness NOT_SERVING: this Redis is a Redis Cluster node "
                             "(cluster_enabled:1), but redrived took it for a single server");
  })) << daemon->Log();
  auto client = Client::Connect(daemon->address());
  absl::StatusOr<bool> serving = client->Serving();
  ASSERT_TRUE(serving.ok()) << serving.status();
  EXPECT_FALSE(*serving);
}

TEST(DaemonCliTest, PasswordIsNeverLogged) {
  TestRedisServer::Options ro;
  ro.password = "hunter2-secret";
  auto redis = TestRedisServer::Start(ro);
  ASSERT_NE(redis, nullptr);
  DaemonProcess::Options o;
  o.redis_url = absl::StrCat("redis://127.0.0.1:", redis->port(), "/0");
  o.env = {"REDRIVE_REDIS_PASSWORD=hunter2-secret"};
  auto daemon = DaemonProcess::Start(o);
  ASSERT_NE(daemon, nullptr);
  auto client = Client::Connect(daemon->address());
  ASSERT_TRUE(WaitFor([&] { return client->Publish("orders", "x").ok(); }));
  redis->Kill();
  auto c2 = Client::Connect(daemon->address());
  ASSERT_TRUE(WaitFor([&] {
    absl::StatusOr<bool> s = c2->Serving();
    return s.ok() && !*s;
  }));
  EXPECT_THAT(daemon->Log(), ::testing::Not(HasSubstr("hunter2")));
}

}  // namespace
}  // namespace redrive
