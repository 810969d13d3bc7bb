// End to end: the redrive.v1.Admin service through the real redrived binary
// and a real redis-server (R-E1..R-E6, R-A5, R-H2, R-H3).
//
// Dead letters are made the way production makes them: a subscriber
// TERMINATEs or NACKs deliveries. Every test waits on conditions; fixed
// windows appear only where a test proves that something does NOT happen,
// and each is named as such.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/envelope.h"
#include "daemon/stream_entry.h"
#include "nlohmann/json.hpp"
#include "redrive/client.h"
#include "tests/testing/daemon_process.h"
#include "tests/testing/redis_inspect.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subscriber.h"
#include "tests/testing/wait.h"

namespace redrive {
namespace {

using ::nlohmann::json;
using ::redrive::testing::DaemonProcess;
using ::redrive::testing::IsOk;
using ::redrive::testing::PendingCount;
using ::redrive::testing::RegisterFor;
using ::redrive::testing::SortedKeys;
using ::redrive::testing::TakeOk;
using ::redrive::testing::TestRedisServer;
using ::redrive::testing::TestSubscriber;
using ::redrive::testing::WaitFor;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAreArray;

constexpr char kToken[] = "test-admin-token-0123456789";

using Stub = v1::Admin::Stub;

v1::HandlerRef Ref(const std::string& channel, const std::string& handler) {
  v1::HandlerRef r;
  r.set_channel(channel);
  r.set_handler_id(handler);
  return r;
}

v1::SubscribeRequest TerminateRequest(uint64_t id, const std::string& reason) {
  v1::SubscribeRequest req;
  v1::Verb* v = req.mutable_verbs()->add_verbs();
  v->set_delivery_id(id);
  v->mutable_terminate()->set_reason(reason);
  v->mutable_terminate()->set_error_code("E_TEST");
  return req;
}

v1::SubscribeRequest NackRequest(uint64_t id, const std::string& reason) {
  v1::SubscribeRequest req;
  v1::Verb* v = req.mutable_verbs()->add_verbs();
  v->set_delivery_id(id);
  v->mutable_nack()->set_reason(reason);
  return req;
}

class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = TestRedisServer::Start();
    ASSERT_NE(redis_, nullptr);
    conn_ = redis_->Connect();
  }

  std::unique_ptr<DaemonProcess> StartDaemon(const std::string& instance,
                                             std::vector<std::string> extra = {},
                                             std::vector<std::string> env = {
                                                 std::string("REDRIVE_ADMIN_TOKEN=") + kToken}) {
    DaemonProcess::Options o;
    o.redis_url = redis_->url();
    o.extra_args = std::move(extra);
    o.extra_args.push_back("--instance-id=" + instance);
    o.env = std::move(env);
    return DaemonProcess::Start(o);
  }

  void Boot(std::vector<std::string> extra = {}) {
    daemon_ = StartDaemon("a1", std::move(extra));
    ASSERT_NE(daemon_, nullptr);
    client_ = Client::Connect(daemon_->address());
    ASSERT_TRUE(client_->WaitForConnected(absl::Seconds(10)));
  }

  // One Admin call with the bearer token (or `token`; "" = none).
  template <typename Req, typename Resp>
  grpc::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                    const Req& request, Resp* response, const std::string& token = kToken,
                    Client* client = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    context.AddMetadata("x-redrive-operator", "admin-test");
    return ((client ? client : client_.get())->admin().*method)(&context, request, response);
  }

  std::unique_ptr<TestSubscriber> Subscribe(const v1::Register& reg, Client* client = nullptr) {
    auto sub = std::make_unique<TestSubscriber>((client ? client : client_.get())->broker(), reg);
    EXPECT_TRUE(sub->WaitRegistered()) << sub->status().error_message();
    return sub;
  }

  std::vector<std::string> PublishAll(const std::string& channel,
                                      const std::vector<std::string>& payloads) {
    std::vector<std::string> ids;
    for (size_t i = 0; i < payloads.size(); i += 500) {
      v1::PublishBatchRequest b;
      b.set_channel(channel);
      for (size_t j = i; j < std::min(payloads.size(), i + 500); ++j) {
        v1::OutgoingMessage* m = b.add_messages();
        m->set_payload(payloads[j]);
        m->set_content_type("application/json");
      }
      absl::StatusOr<v1::PublishBatchResponse> r = client_->PublishBatch(b);
      EXPECT_THAT(r, IsOk());
      if (!r.ok()) return ids;
      ids.insert(ids.end(), r->entry_ids().begin(), r->entry_ids().end());
    }
    return ids;
  }

  // Publishes `n` JSON messages {"n":i} to `channel` and has `sub` TERMINATE
  // each one: `n` dead letters in the handler's DLQ. Returns the main ids.
  std::vector<std::string> MakeDeadLetters(TestSubscriber& sub, const std::string& channel,
                                           const std::string& dlq, size_t n, size_t already = 0) {
    std::vector<std::string> payloads;
    for (size_t i = 0; i < n; ++i) payloads.push_back(absl::StrCat(R"({"n":)", i, "}"));
    std::vector<std::string> ids = PublishAll(channel, payloads);
    const int64_t before = XLen(dlq);
    size_t done = already;
    EXPECT_TRUE(WaitFor(
        [&] {
          std::vector<v1::Delivery> ds = sub.deliveries();
          for (; done < ds.size(); ++done) {
            sub.Send(TerminateRequest(ds[done].delivery_id(), "bad order"));
          }
          return XLen(dlq) == before + static_cast<int64_t>(n);
        },
        absl::Seconds(60)))
        << XLen(dlq);
    return ids;
  }

  std::vector<StreamEntry> XRange(const std::string& stream) {
    return ::redrive::testing::XRangeAll(*conn_, stream);
  }

  int64_t XLen(const std::string& stream) { return ::redrive::testing::XLenOf(*conn_, stream); }

  std::string Xadd(const std::string& stream, const FieldList& fields) {
    RedisArgv argv = {"XADD", stream, "*"};
    for (const auto& [k, v] : fields) {
      argv.push_back(k);
      argv.push_back(v);
    }
    absl::StatusOr<RedisReply> r = conn_->Command(argv);
    EXPECT_TRUE(r.ok() && r->is_string());
    return r.ok() ? r->str : "";
  }

  v1::RedriveJob WaitJobEnd(const std::string& job_id, Client* client = nullptr,
                            absl::Duration timeout = absl::Seconds(60)) {
    v1::RedriveJob job;
    v1::GetRedriveJobRequest get;
    get.set_job_id(job_id);
    EXPECT_TRUE(WaitFor(
        [&] {
          job.Clear();
          grpc::Status s = Call(&Stub::GetRedriveJob, get, &job, kToken, client);
          return s.ok() && job.state() != v1::RedriveJob::RUNNING;
        },
        timeout))
        << job.DebugString();
    return job;
  }

  std::unique_ptr<TestRedisServer> redis_;
  std::unique_ptr<RedisConnection> conn_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<Client> client_;
};

int64_t EntryIdMillisForTest(const std::string& id) {
  return std::stoll(id.substr(0, id.find('-')));
}

std::string DataBody(const StreamEntry& e) {
  for (const auto& [k, v] : e.fields) {
    if (k == kDataField) {
      absl::StatusOr<DecodedEntry> d = DecodeDataValue(v);
      return d.ok() ? d->body : "<undecodable>";
    }
  }
  return "<no __data__>";
}

std::string FieldOr(const StreamEntry& e, absl::string_view name) {
  for (const auto& [k, v] : e.fields) {
    if (k == name) return v;
  }
  return "<absent>";
}

// ---------------------------------------------------------------------------
// Protection (R-A5, R-H3)

TEST_F(AdminTest, EveryRpcNeedsTheBearerToken) {
  Boot();
  v1::ListHandlersRequest req;
  v1::ListHandlersResponse resp;
  EXPECT_EQ(Call(&Stub::ListHandlers, req, &resp, "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Call(&Stub::ListHandlers, req, &resp, "wrong-token-0123456789").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(Call(&Stub::ListHandlers, req, &resp).ok());

  // A refused destructive call changes nothing.
  auto sub = Subscribe(RegisterFor("orders", "A"));
  MakeDeadLetters(*sub, "orders", "orders.A.dlq", 2);
  v1::PurgeDeadLettersRequest purge;
  *purge.mutable_handler() = Ref("orders", "A");
  purge.set_expected_count(2);
  v1::PurgeDeadLettersResponse purged;
  EXPECT_EQ(Call(&Stub::PurgeDeadLetters, purge, &purged, "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(XLen("orders.A.dlq"), 2);
  // Every RPC is protected, not just some.
  v1::GetRedriveJobRequest get;
  get.set_job_id("0123456789abcdef");
  v1::RedriveJob job;
  EXPECT_EQ(Call(&Stub::GetRedriveJob, get, &job, "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::MigrateLegacyKeysRequest mig;
  mig.set_channel("orders");
  v1::MigrateLegacyKeysResponse migrated;
  EXPECT_EQ(Call(&Stub::MigrateLegacyKeys, mig, &migrated, "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // The daemon logged the refusals and the destructive call's absence.
  EXPECT_THAT(daemon_->Log(), HasSubstr("admin call refused"));
  EXPECT_THAT(daemon_->Log(), ::testing::Not(HasSubstr(kToken)));
}

TEST_F(AdminTest, NoTokenConfiguredRefusesAndDisabledAuthAllows) {
  auto locked = StartDaemon("l1", {}, {});
  ASSERT_NE(locked, nullptr);
  auto c1 = Client::Connect(locked->address());
  v1::ListHandlersRequest req;
  v1::ListHandlersResponse resp;
  grpc::Status s = Call(&Stub::ListHandlers, req, &resp, kToken, c1.get());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("no admin token is configured"));

  auto open = StartDaemon("o1", {"--admin-auth=disabled"}, {});
  ASSERT_NE(open, nullptr);
  auto c2 = Client::Connect(open->address());
  EXPECT_TRUE(Call(&Stub::ListHandlers, req, &resp, "", c2.get()).ok());
}

// ---------------------------------------------------------------------------
// Inspection (R-E1)

TEST_F(AdminTest, ListHandlersReportsStreamsDepthsPolicyAndConsumers) {
  Boot();
  v1::Register ra = RegisterFor("orders", "A");
  ra.mutable_retry_policy()->set_max_retries(3);
  auto a = Subscribe(ra);
  auto b = Subscribe(RegisterFor("orders", "B"));
  auto c = Subscribe(RegisterFor("billing", "C"));
  MakeDeadLetters(*a, "orders", "orders.A.dlq", 3);
  ASSERT_TRUE(b->WaitForDeliveries(3));
  b->AckAll();

  v1::ListHandlersRequest req;
  v1::ListHandlersResponse resp;
  ASSERT_TRUE(Call(&Stub::ListHandlers, req, &resp).ok());
  ASSERT_EQ(resp.handlers_size(), 3);
  EXPECT_EQ(resp.handlers(0).handler().channel(), "billing");
  EXPECT_EQ(resp.handlers(1).handler().handler_id(), "A");
  EXPECT_EQ(resp.handlers(2).handler().handler_id(), "B");
  const v1::HandlerInfo& info = resp.handlers(1);
  EXPECT_EQ(info.connected_streams(), 1u);
  EXPECT_EQ(info.dlq_depth(), 3u);
  {
    // The oldest dead letter's age on Redis's clock, from its entry id.
    const std::vector<StreamEntry> dlq = XRange("orders.A.dlq");
    ASSERT_EQ(dlq.size(), 3u);
    absl::StatusOr<RedisReply> t = conn_->Command({"TIME"});
    ASSERT_TRUE(t.ok() && t->is_array());
    const int64_t now_ms =
        std::stoll(t->elements[0].str) * 1000 + std::stoll(t->elements[1].str) / 1000;
    const int64_t age = now_ms - EntryIdMillisForTest(dlq[0].id);
    EXPECT_GE(info.oldest_dead_letter_age_ms(), age - 5000);
    EXPECT_LE(info.oldest_dead_letter_age_ms(), age);
  }
  EXPECT_EQ(info.lag(), 0);
  EXPECT_EQ(info.pending(), 0u);
  EXPECT_FALSE(info.paused());
  EXPECT_EQ(info.retry_policy().max_retries(), 3u);
  EXPECT_EQ(info.names().dlq_stream(), "orders.A.dlq");
  EXPECT_EQ(info.names().retry_stream(), "orders.A.retry");
  ASSERT_EQ(info.consumers_size(), 1);
  EXPECT_EQ(info.consumers(0).name(), "A-a1");
  EXPECT_TRUE(info.consumers(0).local());
  EXPECT_EQ(resp.handlers(2).dlq_depth(), 0u);
  EXPECT_EQ(resp.handlers(2).oldest_dead_letter_age_ms(), 0);

  // Lag: entries published while B is gone are counted.
  b.reset();
  ASSERT_TRUE(WaitFor([&] {
    v1::ListHandlersResponse r;
    Call(&Stub::ListHandlers, req, &r);
    return r.handlers_size() == 3 && r.handlers(2).connected_streams() == 0;
  }));
  a->AckAll();
  PublishAll("orders", {"{}", "{}"});
  ASSERT_TRUE(WaitFor([&] {
    v1::ListHandlersResponse r;
    Call(&Stub::ListHandlers, req, &r);
    return r.handlers_size() == 3 && r.handlers(2).lag() == 2;
  }));

  req.set_channel("billing");
  resp.Clear();
  ASSERT_TRUE(Call(&Stub::ListHandlers, req, &resp).ok());
  ASSERT_EQ(resp.handlers_size(), 1);
  EXPECT_EQ(resp.handlers(0).handler().handler_id(), "C");
  req.set_channel(".bad");
  EXPECT_EQ(Call(&Stub::ListHandlers, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AdminTest, ListGetAndCountDeadLettersWithPagingOrderFiltersAndPreview) {
  Boot();
  v1::Register reg = RegisterFor("orders", "A");
  reg.mutable_retry_policy()->set_max_retries(0);  // a NACK dead-letters at once
  auto a = Subscribe(reg);
  const std::vector<std::string> terminated = MakeDeadLetters(*a, "orders", "orders.A.dlq", 3);
  // Two more, NACKed: reason max_retries.
  const std::vector<std::string> nacked =
      PublishAll("orders", {R"({"big":")" + std::string(1000, 'x') + R"("})", R"({"n":99})"});
  ASSERT_TRUE(a->WaitForDeliveries(5));
  for (size_t i = 3; i < 5; ++i) a->Send(NackRequest(a->deliveries()[i].delivery_id(), "db down"));
  ASSERT_TRUE(WaitFor([&] { return XLen("orders.A.dlq") == 5; }));
  const std::vector<StreamEntry> dlq = XRange("orders.A.dlq");
  ASSERT_EQ(dlq.size(), 5u);

  // Oldest first, pages of 2: 2 + 2 + 1, the cursor empty at the end.
  v1::ListDeadLettersRequest list;
  *list.mutable_handler() = Ref("orders", "A");
  list.set_page_size(2);
  std::vector<std::string> seen;
  for (int page = 0; page < 3; ++page) {
    v1::ListDeadLettersResponse resp;
    ASSERT_TRUE(Call(&Stub::ListDeadLetters, list, &resp).ok());
    ASSERT_EQ(resp.dead_letters_size(), page < 2 ? 2 : 1);
    for (const v1::DeadLetter& d : resp.dead_letters()) seen.push_back(d.entry_id());
    EXPECT_EQ(resp.next_cursor().empty(), page == 2);
    list.set_cursor(resp.next_cursor());
  }
  std::vector<std::string> want;
  for (const StreamEntry& e : dlq) want.push_back(e.id);
  EXPECT_EQ(seen, want);

  // Newest first.
  list.set_cursor("");
  list.set_page_size(100);
  list.set_order(v1::ORDER_NEWEST_FIRST);
  v1::ListDeadLettersResponse newest;
  ASSERT_TRUE(Call(&Stub::ListDeadLetters, list, &newest).ok());
  ASSERT_EQ(newest.dead_letters_size(), 5);
  EXPECT_EQ(newest.dead_letters(0).entry_id(), dlq[4].id);
  EXPECT_EQ(newest.dead_letters(4).entry_id(), dlq[0].id);
  EXPECT_TRUE(newest.next_cursor().empty());

  // Reason filter and preview size.
  list.set_order(v1::ORDER_OLDEST_FIRST);
  list.mutable_filter()->add_reasons("max_retries");
  list.set_preview_bytes(16);
  v1::ListDeadLettersResponse filtered;
  ASSERT_TRUE(Call(&Stub::ListDeadLetters, list, &filtered).ok());
  ASSERT_EQ(filtered.dead_letters_size(), 2);
  const v1::DeadLetter& big = filtered.dead_letters(0);
  EXPECT_EQ(big.reason(), "max_retries");
  EXPECT_EQ(big.original_entry_id(), nacked[0]);
  EXPECT_EQ(big.payload(), std::string(R"({"big":"xxxxxxxx)"));
  EXPECT_TRUE(big.payload_truncated());
  EXPECT_EQ(big.payload_size(), 1010u);
  EXPECT_EQ(big.last_error(), "db down");
  EXPECT_EQ(filtered.dead_letters(1).payload(), R"({"n":99})");
  EXPECT_FALSE(filtered.dead_letters(1).payload_truncated());

  // Get: the whole entry with provenance and history.
  v1::GetDeadLetterRequest get;
  *get.mutable_handler() = Ref("orders", "A");
  get.set_entry_id(dlq[0].id);
  v1::DeadLetter one;
  ASSERT_TRUE(Call(&Stub::GetDeadLetter, get, &one).ok());
  EXPECT_EQ(one.payload(), R"({"n":0})");
  EXPECT_EQ(one.reason(), "terminated");
  EXPECT_EQ(one.source_channel(), "orders");
  EXPECT_EQ(one.handler_id(), "A");
  EXPECT_EQ(one.attempts(), 1u);
  EXPECT_EQ(one.last_error(), "bad order");
  EXPECT_EQ(one.last_error_code(), "E_TEST");
  EXPECT_EQ(one.original_entry_id(), terminated[0]);
  EXPECT_EQ(one.content_type(), "application/json");
  EXPECT_FALSE(one.eggai_format());
  EXPECT_EQ(one.redrive_count(), 0u);
  ASSERT_EQ(one.history_size(), 1);
  EXPECT_EQ(one.history(0).outcome(), "terminated");
  EXPECT_EQ(one.history(0).consumer(), "A-a1");
  EXPECT_GT(one.dead_lettered_unix_ms(), 0);

  // Count: all, by reason, by time.
  v1::CountDeadLettersRequest count;
  *count.mutable_handler() = Ref("orders", "A");
  v1::CountDeadLettersResponse n;
  ASSERT_TRUE(Call(&Stub::CountDeadLetters, count, &n).ok());
  EXPECT_EQ(n.count(), 5u);
  count.mutable_filter()->add_reasons("terminated");
  ASSERT_TRUE(Call(&Stub::CountDeadLetters, count, &n).ok());
  EXPECT_EQ(n.count(), 3u);
  count.mutable_filter()->clear_reasons();
  count.mutable_filter()->set_from_unix_ms(EntryIdMillisForTest(dlq[4].id) + 1);
  ASSERT_TRUE(Call(&Stub::CountDeadLetters, count, &n).ok());
  EXPECT_EQ(n.count(), 0u);
  count.mutable_filter()->set_from_unix_ms(EntryIdMillisForTest(dlq[0].id));
  count.mutable_filter()->set_to_unix_ms(EntryIdMillisForTest(dlq[4].id) + 1);
  ASSERT_TRUE(Call(&Stub::CountDeadLetters, count, &n).ok());
  EXPECT_EQ(n.count(), 5u);

  // Errors, each with its status.
  v1::ListDeadLettersResponse r;
  list.Clear();
  *list.mutable_handler() = Ref("orders", "A");
  list.set_page_size(1001);
  EXPECT_EQ(Call(&Stub::ListDeadLetters, list, &r).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  list.set_page_size(10);
  list.set_cursor("garbage");
  EXPECT_EQ(Call(&Stub::ListDeadLetters, list, &r).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  list.set_cursor("");
  list.set_preview_bytes(65537);
  EXPECT_EQ(Call(&Stub::ListDeadLetters, list, &r).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  list.set_preview_bytes(0);
  list.mutable_filter()->set_from_unix_ms(200);
  list.mutable_filter()->set_to_unix_ms(100);
  EXPECT_EQ(Call(&Stub::ListDeadLetters, list, &r).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  list.clear_filter();
  *list.mutable_handler() = Ref("orders", "nobody");
  EXPECT_EQ(Call(&Stub::ListDeadLetters, list, &r).error_code(), grpc::StatusCode::NOT_FOUND);
  *list.mutable_handler() = Ref("orders", "bad handler");
  EXPECT_EQ(Call(&Stub::ListDeadLetters, list, &r).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  get.set_entry_id("1-99999");
  EXPECT_EQ(Call(&Stub::GetDeadLetter, get, &one).error_code(), grpc::StatusCode::NOT_FOUND);
  get.set_entry_id("not-an-id");
  EXPECT_EQ(Call(&Stub::GetDeadLetter, get, &one).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  count.mutable_filter()->add_reasons("");
  EXPECT_EQ(Call(&Stub::CountDeadLetters, count, &n).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AdminTest, EggAIMadeDeadLettersDecode) {
  Boot();
  // PR #277 shape: _dlq_* keys in the body; and the older shape with only
  // EggAI's retry metadata. No registration: the DLQ stream makes the
  // handler known.
  const std::string dlq = "eggai.orders.svc-handle-1.dlq";
  const std::string with_keys = Xadd(
      dlq,
      {{"__data__",
        R"({"id":"e1","data":{"k":1},"_retry_count":"0","_original_message_id":"1700000000000-0","_dlq_source":"eggai.orders","_dlq_handler":"svc-handle-1","_dlq_at":"2023-11-14T22:13:20.123+00:00","_dlq_reason":"max_retries","_dlq_retries":"5"})"}});
  const std::string older = Xadd(
      dlq,
      {{"__data__", R"({"id":"e2","_retry_count":"3","_original_message_id":"1700000000001-0"})"}});
  v1::ListDeadLettersRequest list;
  *list.mutable_handler() = Ref("eggai.orders", "svc-handle-1");
  v1::ListDeadLettersResponse resp;
  ASSERT_TRUE(Call(&Stub::ListDeadLetters, list, &resp).ok());
  ASSERT_EQ(resp.dead_letters_size(), 2);
  const v1::DeadLetter& a = resp.dead_letters(0);
  EXPECT_EQ(a.entry_id(), with_keys);
  EXPECT_TRUE(a.eggai_format());
  EXPECT_EQ(a.reason(), "max_retries");
  EXPECT_EQ(a.source_channel(), "eggai.orders");
  EXPECT_EQ(a.handler_id(), "svc-handle-1");
  EXPECT_EQ(a.attempts(), 6u);
  EXPECT_EQ(a.dead_lettered_unix_ms(), EntryIdMillisForTest(with_keys));
  EXPECT_EQ(a.original_entry_id(), "1700000000000-0");
  EXPECT_EQ(a.payload(), R"({"id":"e1","data":{"k":1}})");
  const v1::DeadLetter& b = resp.dead_letters(1);
  EXPECT_TRUE(b.eggai_format());
  EXPECT_EQ(b.reason(), "max_retries");
  EXPECT_EQ(b.attempts(), 4u);
  EXPECT_EQ(b.original_entry_id(), "1700000000001-0");
  EXPECT_EQ(b.payload(), R"({"id":"e2"})");
}

// ---------------------------------------------------------------------------
// Redrive (R-E2)

TEST_F(AdminTest, RedriveOfThousandAtFiveHundredPerSecondReachesOnlyTheOwnerOnce) {
  Boot();
  auto a = Subscribe(RegisterFor("orders", "A", 1000));
  auto b = Subscribe(RegisterFor("orders", "B", 1000));
  const std::vector<std::string> ids = MakeDeadLetters(*a, "orders", "orders.A.dlq", 1000);
  ASSERT_EQ(ids.size(), 1000u);
  ASSERT_TRUE(b->WaitForDeliveries(1000));
  b->AckAll();
  ASSERT_TRUE(WaitFor([&] { return PendingCount(*conn_, "orders", "B") == 0; }));

  v1::RedriveDeadLettersRequest req;
  *req.mutable_handler() = Ref("orders", "A");
  req.set_all(true);
  req.set_rate_per_second(500);
  v1::RedriveDeadLettersResponse resp;
  const absl::Time started = absl::Now();
  ASSERT_TRUE(Call(&Stub::RedriveDeadLetters, req, &resp).ok());
  EXPECT_EQ(resp.job().total(), 1000u);
  EXPECT_EQ(resp.job().state(), v1::RedriveJob::RUNNING);
  EXPECT_EQ(resp.job().target().kind(), v1::RedriveTarget::TARGET_HANDLER_RETRY);
  const v1::RedriveJob job = WaitJobEnd(resp.job().job_id());
  const absl::Duration took = absl::Now() - started;
  EXPECT_EQ(job.state(), v1::RedriveJob::SUCCEEDED);
  EXPECT_EQ(job.moved(), 1000u);
  EXPECT_EQ(job.skipped(), 0u);
  EXPECT_EQ(job.failed(), 0u);
  // 1,000 at 500/s: about 2 s (the last one is due at 1.998 s).
  EXPECT_GE(took, absl::Milliseconds(1900)) << took;
  EXPECT_LE(took, absl::Milliseconds(4000)) << took;
  EXPECT_GE(job.updated_unix_ms() - job.created_unix_ms(), 1900);

  // A gets each message exactly once more, from its own retry stream.
  ASSERT_TRUE(a->WaitForDeliveries(2000, absl::Seconds(30)));
  const std::vector<v1::Delivery> all = a->deliveries();
  std::map<std::string, int> per_original;
  for (size_t i = 1000; i < all.size(); ++i) {
    const v1::Delivery& d = all[i];
    EXPECT_EQ(d.stream(), "orders.A.retry");
    EXPECT_EQ(d.attempt(), 2u);  // attempts kept: one more try
    ++per_original[d.original_entry_id()];
    const size_t n =
        static_cast<size_t>(std::find(ids.begin(), ids.end(), d.original_entry_id()) - ids.begin());
    ASSERT_LT(n, ids.size());
    EXPECT_EQ(d.payload(), absl::StrCat(R"({"n":)", n, "}"));
  }
  EXPECT_EQ(per_original.size(), 1000u);
  for (const auto& [id, count] : per_original) EXPECT_EQ(count, 1) << id;
  a->AckAll();
  EXPECT_EQ(XLen("orders.A.dlq"), 0);
  // Window: B, the other handler on the channel, receives nothing; A no more.
  EXPECT_FALSE(b->WaitForDeliveries(1001, absl::Milliseconds(500)));
  EXPECT_FALSE(a->WaitForDeliveries(2001, absl::Milliseconds(100)));
  EXPECT_THAT(daemon_->Log(), HasSubstr("admin RedriveDeadLetters by admin-test"));
}

TEST_F(AdminTest, RedriveDryRunByIdsResetAttemptsAndOtherTargets) {
  Boot();
  auto a = Subscribe(RegisterFor("orders", "A"));
  auto b = Subscribe(RegisterFor("orders", "B"));
  MakeDeadLetters(*a, "orders", "orders.A.dlq", 3);
  ASSERT_TRUE(b->WaitForDeliveries(3));
  b->AckAll();
  const std::vector<StreamEntry> dlq = XRange("orders.A.dlq");
  ASSERT_EQ(dlq.size(), 3u);

  // Dry run: what would move, and nothing moves.
  v1::RedriveDeadLettersRequest req;
  *req.mutable_handler() = Ref("orders", "A");
  req.mutable_ids()->add_entry_ids(dlq[0].id);
  req.mutable_ids()->add_entry_ids("1-1");
  req.mutable_ids()->add_entry_ids(dlq[2].id);
  req.set_dry_run(true);
  v1::RedriveDeadLettersResponse dry;
  ASSERT_TRUE(Call(&Stub::RedriveDeadLetters, req, &dry).ok());
  EXPECT_THAT(dry.would_move(), ElementsAre(dlq[0].id, dlq[2].id));
  EXPECT_THAT(dry.would_skip(), ElementsAre("1-1"));
  EXPECT_EQ(dry.would_move_count(), 2u);
  EXPECT_EQ(dry.would_skip_count(), 1u);
  EXPECT_FALSE(dry.has_job());
  EXPECT_EQ(XLen("orders.A.dlq"), 3);

  // The same for real, attempts reset: delivered to A as attempt 1.
  req.set_dry_run(false);
  req.set_reset_attempts(true);
  v1::RedriveDeadLettersResponse resp;
  ASSERT_TRUE(Call(&Stub::RedriveDeadLetters, req, &resp).ok());
  v1::RedriveJob job = WaitJobEnd(resp.job().job_id());
  EXPECT_EQ(job.state(), v1::RedriveJob::SUCCEEDED);
  EXPECT_EQ(job.total(), 3u);
  EXPECT_EQ(job.moved(), 2u);
  EXPECT_EQ(job.skipped(), 1u);
  ASSERT_TRUE(a->WaitForDeliveries(5));
  EXPECT_EQ(a->deliveries()[3].attempt(), 1u);
  EXPECT_EQ(a->deliveries()[3].payload(), R"({"n":0})");
  EXPECT_EQ(a->deliveries()[4].payload(), R"({"n":2})");
  a->AckAll();
  EXPECT_THAT(XRange("orders.A.dlq"), ::testing::SizeIs(1));

  // To the source channel: every handler sees it again (on request only).
  v1::RedriveDeadLettersRequest all;
  *all.mutable_handler() = Ref("orders", "A");
  all.set_all(true);
  all.mutable_target()->set_kind(v1::RedriveTarget::TARGET_SOURCE_CHANNEL);
  ASSERT_TRUE(Call(&Stub::RedriveDeadLetters, all, &resp).ok());
  job = WaitJobEnd(resp.job().job_id());
  EXPECT_EQ(job.moved(), 1u);
  ASSERT_TRUE(a->WaitForDeliveries(6));
  ASSERT_TRUE(b->WaitForDeliveries(4));
  EXPECT_EQ(a->deliveries()[5].payload(), R"({"n":1})");
  EXPECT_EQ(a->deliveries()[5].stream(), "orders");
  EXPECT_EQ(a->deliveries()[5].attempt(), 1u);
  EXPECT_EQ(b->deliveries()[3].payload(), R"({"n":1})");
  // ... which A now dead-letters again; then to another channel.
  a->Send(TerminateRequest(a->deliveries()[5].delivery_id(), "still bad"));
  b->AckAll();
  ASSERT_TRUE(WaitFor([&] { return XLen("orders.A.dlq") == 1; }));
  const std::vector<StreamEntry> again = XRange("orders.A.dlq");
  EXPECT_EQ(FieldOr(again[0], "x-redrive-redrives"), "1");
  all.mutable_target()->set_kind(v1::RedriveTarget::TARGET_CHANNEL);
  all.mutable_target()->set_channel("quarantine");
  // Refused while nothing reads that channel, accepted once a group does.
  EXPECT_EQ(Call(&Stub::RedriveDeadLetters, all, &resp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(conn_->Command({"XGROUP", "CREATE", "quarantine", "q", "$", "MKSTREAM"}).ok());
  ASSERT_TRUE(Call(&Stub::RedriveDeadLetters, all, &resp).ok());
  EXPECT_EQ(WaitJobEnd(resp.job().job_id()).moved(), 1u);
  const std::vector<StreamEntry> moved = XRange("quarantine");
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(DataBody(moved[0]), R"({"n":1})");
  EXPECT_EQ(FieldOr(moved[0], "x-redrive-redrives"), "2");
  EXPECT_EQ(XLen("orders.A.dlq"), 0);
}

TEST_F(AdminTest, RedrivenTooOftenIsQuarantinedUnlessIncluded) {
  Boot({"--max-redrives=1"});
  auto a = Subscribe(RegisterFor("orders", "A"));
  MakeDeadLetters(*a, "orders", "orders.A.dlq", 1);
  v1::RedriveDeadLettersRequest req;
  *req.mutable_handler() = Ref("orders", "A");
  req.set_all(true);
  v1::RedriveDeadLettersResponse resp;
  ASSERT_TRUE(Call(&Stub::RedriveDeadLetters, req, &resp).ok());
  EXPECT_EQ(WaitJobEnd(resp.job().job_id()).moved(), 1u);
  ASSERT_TRUE(a->WaitForDeliveries(2));
  a->Send(TerminateRequest(a->deliveries()[1].delivery_id(), "again"));
  ASSERT_TRUE(WaitFor([&] { return XLen("orders.A.dlq") == 1; }));

  v1::GetDeadLetterRequest get;
  *get.mutable_handler() = Ref("orders", "A");
  get.set_entry_id(XRange("orders.A.dlq")[0].id);
  v1::DeadLetter d;
  ASSERT_TRUE(Call(&Stub::GetDeadLetter, get, &d).ok());
  EXPECT_EQ(d.redrive_count(), 1u);
  EXPECT_TRUE(d.quarantined());
  EXPECT_EQ(d.attempts(), 2u);

  ASSERT_TRUE(Call(&Stub::RedriveDeadLetters, req, &resp).ok());
  v1::RedriveJob job = WaitJobEnd(resp.job().job_id());
  EXPECT_EQ(job.moved(), 0u);
  EXPECT_EQ(job.skipped(), 1u);
  EXPECT_EQ(XLen("orders.A.dlq"), 1);
  req.set_include_quarantined(true);
  ASSERT_TRUE(Call(&Stub::RedriveDeadLetters, req, &resp).ok());
  EXPECT_EQ(WaitJobEnd(resp.job().job_id()).moved(), 1u);
  ASSERT_TRUE(a->WaitForDeliveries(3));
  EXPECT_EQ(a->deliveries()[2].attempt(), 3u);
}

TEST_F(AdminTest, RedriveInterruptedByKill9ResumesAndMovesEachEntryExactlyOnce) {
  Boot();
  auto a = Subscribe(RegisterFor("orders", "A", 1000));
  const std::vector<std::string> ids = MakeDeadLetters(*a, "orders", "orders.A.dlq", 300);
  a.reset();  // nobody reads the retry stream: it holds exactly what moved

  auto second = StartDaemon("a2", {"--log-level=debug"});
  ASSERT_NE(second, nullptr);
  auto other = Client::Connect(second->address());

  v1::RedriveDeadLettersRequest req;
  *req.mutable_handler() = Ref("orders", "A");
  req.set_all(true);
  req.set_rate_per_second(100);
  v1::RedriveDeadLettersResponse resp;
  ASSERT_TRUE(Call(&Stub::RedriveDeadLetters, req, &resp).ok());
  const std::string job_id = resp.job().job_id();
  ASSERT_TRUE(WaitFor([&] { return XLen("orders.A.retry") >= 50; }));
  daemon_->Kill9();
  const int64_t at_kill = XLen("orders.A.retry");
  EXPECT_LT(at_kill, 300);

  // The other daemon takes the job over once its heartbeat is stale.
  const v1::RedriveJob job = WaitJobEnd(job_id, other.get(), absl::Seconds(60));
  EXPECT_EQ(job.state(), v1::RedriveJob::SUCCEEDED);
  EXPECT_EQ(job.total(), 300u);
  EXPECT_EQ(job.moved(), 300u);
  EXPECT_EQ(job.skipped(), 0u);
  EXPECT_THAT(second->Log(), HasSubstr(absl::StrCat(
                                 "redrive job resumed here (its daemon stopped) job=", job_id)));

  const std::vector<StreamEntry> retry = XRange("orders.A.retry");
  ASSERT_EQ(retry.size(), 300u);
  std::multiset<std::string> originals;
  for (const StreamEntry& e : retry) {
    originals.insert(json::parse(DataBody(e)).value("_original_message_id", ""));
  }
  EXPECT_THAT(originals, UnorderedElementsAreArray(ids));
  EXPECT_EQ(XLen("orders.A.dlq"), 0);
}

TEST_F(AdminTest, CancelStopsAJobAndReportsExactlyWhatMoved) {
  Boot();
  auto a = Subscribe(RegisterFor("orders", "A", 100));
  MakeDeadLetters(*a, "orders", "orders.A.dlq", 100);
  a.reset();
  v1::RedriveDeadLettersRequest req;
  *req.mutable_handler() = Ref("orders", "A");
  req.set_all(true);
  req.set_rate_per_second(20);
  v1::RedriveDeadLettersResponse resp;
  ASSERT_TRUE(Call(&Stub::RedriveDeadLetters, req, &resp).ok());
  ASSERT_TRUE(WaitFor([&] { return XLen("orders.A.retry") >= 5; }));
  v1::CancelRedriveJobRequest cancel;
  cancel.set_job_id(resp.job().job_id());
  v1::RedriveJob cancelled;
  ASSERT_TRUE(Call(&Stub::CancelRedriveJob, cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), v1::RedriveJob::CANCELLED);
  // The job thread stops at its next step: the counts settle.
  v1::RedriveJob job;
  ASSERT_TRUE(WaitFor([&] {
    v1::GetRedriveJobRequest get;
    get.set_job_id(cancel.job_id());
    Call(&Stub::GetRedriveJob, get, &job);
    return static_cast<int64_t>(job.moved()) == XLen("orders.A.retry");
  }));
  // Window: nothing moves after the cancel.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(static_cast<int64_t>(job.moved()), XLen("orders.A.retry"));
  EXPECT_EQ(job.state(), v1::RedriveJob::CANCELLED);
  EXPECT_LT(job.moved(), 100u);
  EXPECT_EQ(static_cast<int64_t>(job.moved()) + XLen("orders.A.dlq"), 100);

  EXPECT_EQ(Call(&Stub::CancelRedriveJob, cancel, &cancelled).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  cancel.set_job_id("0000000000000000");
  EXPECT_EQ(Call(&Stub::CancelRedriveJob, cancel, &cancelled).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::GetRedriveJobRequest get;
  get.set_job_id("not-a-job");
  EXPECT_EQ(Call(&Stub::GetRedriveJob, get, &job).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  get.set_job_id("0000000000000000");
  EXPECT_EQ(Call(&Stub::GetRedriveJob, get, &job).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(AdminTest, JobWhoseTargetStopsBeingAStreamFailsAndLosesNothing) {
  Boot();
  auto a = Subscribe(RegisterFor("orders", "A", 100));
  MakeDeadLetters(*a, "orders", "orders.A.dlq", 100);
  ASSERT_TRUE(conn_->Command({"XGROUP", "CREATE", "elsewhere", "g", "$", "MKSTREAM"}).ok());
  v1::RedriveDeadLettersRequest req;
  *req.mutable_handler() = Ref("orders", "A");
  req.set_all(true);
  req.set_rate_per_second(20);
  req.mutable_target()->set_kind(v1::RedriveTarget::TARGET_CHANNEL);
  req.mutable_target()->set_channel("elsewhere");
  v1::RedriveDeadLettersResponse resp;
  ASSERT_TRUE(Call(&Stub::RedriveDeadLetters, req, &resp).ok());
  ASSERT_TRUE(WaitFor([&] { return XLen("elsewhere") >= 3; }));
  ASSERT_TRUE(conn_->Command({"DEL", "elsewhere"}).ok());
  ASSERT_TRUE(conn_->Command({"SET", "elsewhere", "not a stream"}).ok());
  const v1::RedriveJob job = WaitJobEnd(resp.job().job_id());
  EXPECT_EQ(job.state(), v1::RedriveJob::FAILED);
  EXPECT_THAT(job.error(), HasSubstr("'elsewhere' is not a stream"));
  EXPECT_GE(job.moved(), 3u);
  EXPECT_LT(job.moved(), 100u);
  // What did not move is still in the DLQ.
  EXPECT_EQ(static_cast<int64_t>(job.moved()) + XLen("orders.A.dlq"), 100);
  EXPECT_EQ(job.failed(), 0u);
}

TEST_F(AdminTest, RedriveRejectsBadRequestsWithPreciseStatuses) {
  Boot();
  auto a = Subscribe(RegisterFor("orders", "A"));
  MakeDeadLetters(*a, "orders", "orders.A.dlq", 1);
  v1::RedriveDeadLettersResponse resp;
  auto expect = [&](const v1::RedriveDeadLettersRequest& r, grpc::StatusCode code,
                    const std::string& text) {
    grpc::Status s = Call(&Stub::RedriveDeadLetters, r, &resp);
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(text));
  };
  v1::RedriveDeadLettersRequest r;
  *r.mutable_handler() = Ref("orders", "A");
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "selection is required");
  r.mutable_ids();
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "ids.entry_ids must name 1..10000");
  r.mutable_ids()->add_entry_ids("x");
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "ids.entry_ids[0] 'x' is not an entry id");
  r.set_all(false);
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "all must be true");
  r.set_all(true);
  r.set_rate_per_second(100001);
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "rate_per_second 100001");
  r.set_rate_per_second(0);
  r.mutable_target()->set_kind(v1::RedriveTarget::TARGET_CHANNEL);
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "target.channel");
  r.mutable_target()->set_kind(v1::RedriveTarget::TARGET_SOURCE_CHANNEL);
  r.mutable_target()->set_channel("x");
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "only for target.kind TARGET_CHANNEL");
  r.mutable_target()->set_kind(static_cast<v1::RedriveTarget::Kind>(7));
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "target.kind 7 is unknown");
  ASSERT_TRUE(conn_->Command({"SET", "plain", "1"}).ok());
  r.mutable_target()->set_kind(v1::RedriveTarget::TARGET_CHANNEL);
  r.mutable_target()->set_channel("plain");
  expect(r, grpc::StatusCode::FAILED_PRECONDITION, "'plain' exists and is not a stream");
  r.mutable_target()->set_channel("nobody-reads");
  expect(r, grpc::StatusCode::FAILED_PRECONDITION, "no consumer group reads 'nobody-reads'");
  r.mutable_target()->set_kind(v1::RedriveTarget::TARGET_SOURCE_CHANNEL);
  r.mutable_target()->clear_channel();
  r.set_reset_attempts(true);
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "reset_attempts applies to the handler's retry");
  r.set_reset_attempts(false);
  r.clear_target();
  *r.mutable_handler() = Ref("orders", "ghost");
  expect(r, grpc::StatusCode::NOT_FOUND, "no handler 'ghost'");
  r.mutable_filter()->set_from_unix_ms(-1);
  *r.mutable_handler() = Ref("orders", "A");
  expect(r, grpc::StatusCode::INVALID_ARGUMENT, "must not be negative");
  // Nothing moved; the daemon is up.
  EXPECT_EQ(XLen("orders.A.dlq"), 1);
  EXPECT_TRUE(client_->Serving().value_or(false));
}

// ---------------------------------------------------------------------------
// Delete and purge (R-E3)

TEST_F(AdminTest, DeleteByIdsAndPurgeWithExpectedCount) {
  Boot();
  auto a = Subscribe(RegisterFor("orders", "A"));
  MakeDeadLetters(*a, "orders", "orders.A.dlq", 4);
  const std::vector<StreamEntry> dlq = XRange("orders.A.dlq");

  v1::DeleteDeadLettersRequest del;
  *del.mutable_handler() = Ref("orders", "A");
  del.add_entry_ids(dlq[1].id);
  del.add_entry_ids("1-1");
  v1::DeleteDeadLettersResponse deleted;
  ASSERT_TRUE(Call(&Stub::DeleteDeadLetters, del, &deleted).ok());
  EXPECT_EQ(deleted.deleted(), 1u);
  EXPECT_THAT(deleted.not_found(), ElementsAre("1-1"));
  std::vector<std::string> left;
  for (const StreamEntry& e : XRange("orders.A.dlq")) left.push_back(e.id);
  EXPECT_THAT(left, ElementsAre(dlq[0].id, dlq[2].id, dlq[3].id));
  del.clear_entry_ids();
  EXPECT_EQ(Call(&Stub::DeleteDeadLetters, del, &deleted).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  del.add_entry_ids("nope");
  EXPECT_EQ(Call(&Stub::DeleteDeadLetters, del, &deleted).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  v1::PurgeDeadLettersRequest purge;
  *purge.mutable_handler() = Ref("orders", "A");
  purge.set_expected_count(4);  // wrong: 3 are left
  v1::PurgeDeadLettersResponse purged;
  grpc::Status s = Call(&Stub::PurgeDeadLetters, purge, &purged);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("holds 3 dead letters, not 4"));
  EXPECT_EQ(XLen("orders.A.dlq"), 3);  // nothing deleted
  purge.set_expected_count(3);
  ASSERT_TRUE(Call(&Stub::PurgeDeadLetters, purge, &purged).ok());
  EXPECT_EQ(purged.purged(), 3u);
  EXPECT_EQ(XLen("orders.A.dlq"), 0);
  const std::string log = daemon_->Log();
  EXPECT_THAT(log, HasSubstr("admin PurgeDeadLetters by admin-test: "));
  EXPECT_THAT(log, HasSubstr("channel=orders handler=A expected_count=3 result=purged 3"));
  EXPECT_THAT(log, HasSubstr("admin DeleteDeadLetters by admin-test"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr(R"({"n":)")));  // no payloads in the log
}

// ---------------------------------------------------------------------------
// Pause and resume (R-E5)

TEST_F(AdminTest, PausedHandlerReceivesNothingNewAndKeepsItsLeases) {
  Boot();
  auto a = Subscribe(RegisterFor("orders", "A"));
  auto b = Subscribe(RegisterFor("orders", "B"));
  PublishAll("orders", {R"({"n":0})"});
  ASSERT_TRUE(a->WaitForDeliveries(1));
  ASSERT_TRUE(b->WaitForDeliveries(1));
  b->AckAll();

  v1::PauseHandlerRequest pause;
  *pause.mutable_handler() = Ref("orders", "A");
  v1::HandlerInfo info;
  ASSERT_TRUE(Call(&Stub::PauseHandler, pause, &info).ok());
  EXPECT_TRUE(info.paused());
  EXPECT_EQ(info.connected_streams(), 1u);
  PublishAll("orders", {R"({"n":1})", R"({"n":2})"});
  ASSERT_TRUE(b->WaitForDeliveries(3));
  // Window: A, paused, gets nothing new; its delivery in flight can still be
  // settled.
  EXPECT_FALSE(a->WaitForDeliveries(2, absl::Milliseconds(700)));
  a->AckAll();
  ASSERT_TRUE(WaitFor([&] { return PendingCount(*conn_, "orders", "A") == 0; }));

  // A second daemon's registration of the paused handler gets nothing either.
  auto second = StartDaemon("a2");
  ASSERT_NE(second, nullptr);
  auto other = Client::Connect(second->address());
  auto a2 = Subscribe(RegisterFor("orders", "A"), other.get());
  EXPECT_FALSE(a2->WaitForDeliveries(1, absl::Milliseconds(500)));

  v1::ResumeHandlerRequest resume;
  *resume.mutable_handler() = Ref("orders", "A");
  ASSERT_TRUE(Call(&Stub::ResumeHandler, resume, &info).ok());
  EXPECT_FALSE(info.paused());
  ASSERT_TRUE(WaitFor([&] { return a->delivery_count() + a2->delivery_count() == 3; }));
  std::vector<std::string> got;
  for (auto* s : {a.get(), a2.get()}) {
    for (const v1::Delivery& d : s->deliveries()) got.push_back(d.payload());
  }
  EXPECT_THAT(got, ::testing::UnorderedElementsAre(R"({"n":0})", R"({"n":1})", R"({"n":2})"));
  // Window: each exactly once.
  EXPECT_FALSE(WaitFor([&] { return a->delivery_count() + a2->delivery_count() > 3; },
                       absl::Milliseconds(300)));

  *pause.mutable_handler() = Ref("orders", "ghost");
  EXPECT_EQ(Call(&Stub::PauseHandler, pause, &info).error_code(), grpc::StatusCode::NOT_FOUND);
  *pause.mutable_handler() = Ref("", "A");
  EXPECT_EQ(Call(&Stub::PauseHandler, pause, &info).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// ---------------------------------------------------------------------------
// Legacy migration (R-E6)

TEST_F(AdminTest, MigratesEggAIPre226SharedRetryStreamPerHandler) {
  Boot();
  // The pre-#226 layout, built as EggAI built it: one shared retry stream
  // `orders.retry` read by a `-retry` group per handler, one shared DLQ.
  const std::string legacy = "orders.retry";
  std::vector<std::string> e;
  for (int i = 1; i <= 4; ++i) {
    e.push_back(Xadd(
        legacy, {{"__data__", absl::StrCat(R"({"id":"m)", i,
                                           R"(","_retry_count":"1","_original_message_id":"1-)", i,
                                           R"("})")}}));
  }
  for (const char* g : {"svc-a-1-retry", "svc-b-1-retry"}) {
    ASSERT_TRUE(conn_->Command({"XGROUP", "CREATE", legacy, g, "0"}).ok());
  }
  // A read m1, m2 and acked m1: m2 pending, m3 and m4 unread.
  ASSERT_TRUE(conn_
                  ->Command({"XREADGROUP", "GROUP", "svc-a-1-retry", "c", "COUNT", "2", "STREAMS",
                             legacy, ">"})
                  .ok());
  ASSERT_TRUE(conn_->Command({"XACK", legacy, "svc-a-1-retry", e[0]}).ok());
  // B read everything and acked m1..m3: m4 pending.
  ASSERT_TRUE(
      conn_->Command({"XREADGROUP", "GROUP", "svc-b-1-retry", "c", "STREAMS", legacy, ">"}).ok());
  ASSERT_TRUE(conn_->Command({"XACK", legacy, "svc-b-1-retry", e[0], e[1], e[2]}).ok());
  Xadd("orders.dlq", {{"__data__", R"({"id":"d1"})"}});
  Xadd("orders.dlq", {{"__data__", R"({"id":"d2"})"}});
  const std::vector<std::string> keys_before = SortedKeys(*conn_);

  v1::MigrateLegacyKeysRequest req;
  req.set_channel("orders");
  req.set_dry_run(true);
  v1::MigrateLegacyKeysResponse dry;
  ASSERT_TRUE(Call(&Stub::MigrateLegacyKeys, req, &dry).ok());
  EXPECT_TRUE(dry.dry_run());
  EXPECT_EQ(dry.legacy_retry_stream(), "orders.retry");
  EXPECT_EQ(dry.legacy_dlq_stream(), "orders.dlq");
  EXPECT_EQ(dry.unattributed_dead_letters(), 2u);
  ASSERT_EQ(dry.migrations_size(), 2);
  EXPECT_EQ(dry.migrations(0).handler_id(), "svc-a-1");
  EXPECT_EQ(dry.migrations(0).retry_entries(), 3u);
  EXPECT_EQ(dry.migrations(0).target_stream(), "orders.svc-a-1.retry");
  EXPECT_EQ(dry.migrations(1).handler_id(), "svc-b-1");
  EXPECT_EQ(dry.migrations(1).retry_entries(), 1u);
  EXPECT_EQ(SortedKeys(*conn_), keys_before);  // a dry run changes nothing

  req.set_dry_run(false);
  v1::MigrateLegacyKeysResponse done;
  ASSERT_TRUE(Call(&Stub::MigrateLegacyKeys, req, &done).ok());
  ASSERT_EQ(done.migrations_size(), 2);
  EXPECT_EQ(done.migrations(0).retry_entries(), 3u);
  EXPECT_EQ(done.migrations(1).retry_entries(), 1u);
  std::vector<std::string> a_bodies, b_bodies;
  for (const StreamEntry& x : XRange("orders.svc-a-1.retry"))
    a_bodies.push_back(FieldOr(x, "__data__"));
  for (const StreamEntry& x : XRange("orders.svc-b-1.retry"))
    b_bodies.push_back(FieldOr(x, "__data__"));
  const std::vector<StreamEntry> old = XRange(legacy);
  EXPECT_THAT(a_bodies, ElementsAre(FieldOr(old[1], "__data__"), FieldOr(old[2], "__data__"),
                                    FieldOr(old[3], "__data__")));
  EXPECT_THAT(b_bodies, ElementsAre(FieldOr(old[3], "__data__")));
  EXPECT_EQ(PendingCount(*conn_, legacy, "svc-a-1-retry"), 0);
  EXPECT_EQ(PendingCount(*conn_, legacy, "svc-b-1-retry"), 0);
  EXPECT_EQ(XLen("orders.dlq"), 2);  // left in place, reported
  std::vector<std::string> keys = SortedKeys(*conn_);
  EXPECT_THAT(keys, ElementsAre("orders.dlq", "orders.retry", "orders.svc-a-1.retry",
                                "orders.svc-b-1.retry"));

  // Running it again moves nothing (no duplicates).
  v1::MigrateLegacyKeysResponse again;
  ASSERT_TRUE(Call(&Stub::MigrateLegacyKeys, req, &again).ok());
  EXPECT_EQ(again.migrations(0).retry_entries(), 0u);
  EXPECT_EQ(again.migrations(1).retry_entries(), 0u);
  EXPECT_EQ(XLen("orders.svc-a-1.retry"), 3);

  // The handler now receives its migrated retries, with EggAI's count.
  auto a = Subscribe(RegisterFor("orders", "svc-a-1"));
  ASSERT_TRUE(a->WaitForDeliveries(3));
  EXPECT_EQ(a->deliveries()[0].payload(), R"({"id":"m2"})");
  EXPECT_EQ(a->deliveries()[0].attempt(), 2u);
  EXPECT_EQ(a->deliveries()[0].original_entry_id(), "1-2");
  EXPECT_EQ(a->deliveries()[2].payload(), R"({"id":"m4"})");

  req.set_channel("bad channel");
  EXPECT_EQ(Call(&Stub::MigrateLegacyKeys, req, &again).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// ---------------------------------------------------------------------------
// Retiring a handler (issue 10 item 11)

v1::DeleteHandlerRequest DeleteRequest(const std::string& channel, const std::string& handler,
                                       bool force = false, uint64_t retry = 0, uint64_t dead = 0) {
  v1::DeleteHandlerRequest r;
  *r.mutable_handler() = Ref(channel, handler);
  r.set_force(force);
  r.set_expected_retry_entries(retry);
  r.set_expected_dead_letters(dead);
  return r;
}

std::vector<std::string> GroupNames(RedisCommander& redis, const std::string& stream) {
  std::vector<std::string> names;
  absl::StatusOr<RedisReply> r = redis.Command({"XINFO", "GROUPS", stream});
  if (!r.ok() || !r->is_array()) return names;
  for (const RedisReply& g : r->elements) {
    for (size_t i = 0; i + 1 < g.elements.size(); i += 2) {
      if (g.elements[i].str == "name") names.push_back(g.elements[i + 1].str);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> HashFields(RedisCommander& redis, const std::string& key) {
  std::vector<std::string> fields;
  absl::StatusOr<RedisReply> r = redis.Command({"HKEYS", key});
  if (r.ok() && r->is_array()) {
    for (const RedisReply& f : r->elements) fields.push_back(f.str);
  }
  std::sort(fields.begin(), fields.end());
  return fields;
}

TEST_F(AdminTest, DeleteHandlerRemovesExactlyThatHandlersKeysOnceConfirmed) {
  Boot();
  auto a = Subscribe(RegisterFor("orders", "A"));
  auto b = Subscribe(RegisterFor("orders", "B"));
  // A: two dead letters, one retry that went through the retry stream and
  // was acknowledged, one retry waiting an hour in the due set; paused.
  MakeDeadLetters(*a, "orders", "orders.A.dlq", 2);
  PublishAll("orders", {R"({"n":"retried"})", R"({"n":"waiting"})"});
  ASSERT_TRUE(a->WaitForDeliveries(4));
  a->Send(NackRequest(a->deliveries()[2].delivery_id(), "try again"));
  {
    v1::SubscribeRequest later = NackRequest(a->deliveries()[3].delivery_id(), "much later");
    later.mutable_verbs()->mutable_verbs(0)->mutable_nack()->set_delay_ms(3600 * 1000);
    a->Send(later);
  }
  ASSERT_TRUE(a->WaitForDeliveries(5));  // the retried one, attempt 2
  EXPECT_EQ(a->deliveries()[4].attempt(), 2u);
  a->Ack({a->deliveries()[4].delivery_id()});
  // B: a dead letter of its own, the rest acknowledged.
  ASSERT_TRUE(b->WaitForDeliveries(4));
  b->Send(TerminateRequest(b->deliveries()[0].delivery_id(), "B's own"));
  b->Ack({b->deliveries()[1].delivery_id(), b->deliveries()[2].delivery_id(),
          b->deliveries()[3].delivery_id()});
  ASSERT_TRUE(WaitFor([&] {
    return PendingCount(*conn_, "orders.A.retry", "A-retry") == 0 &&
           PendingCount(*conn_, "orders", "B") == 0 && XLen("orders.B.dlq") == 1;
  }));
  v1::PauseHandlerRequest pause;
  *pause.mutable_handler() = Ref("orders", "A");
  v1::HandlerInfo paused;
  ASSERT_TRUE(Call(&Stub::PauseHandler, pause, &paused).ok());

  const std::vector<std::string> before = {
      "orders",       "orders.A.dlq",       "orders.A.retry",  "orders.A.retry.due",
      "orders.B.dlq", "{redrive}:handlers", "{redrive}:paused"};
  ASSERT_THAT(SortedKeys(*conn_), ElementsAreArray(before));
  ASSERT_THAT(GroupNames(*conn_, "orders"), ElementsAre("A", "B"));

  // Connected here: refused, nothing changes.
  v1::DeleteHandlerResponse resp;
  grpc::Status s = Call(&Stub::DeleteHandler, DeleteRequest("orders", "A"), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("connected to this daemon (a1)"));
  // Even forced with the right counts.
  s = Call(&Stub::DeleteHandler, DeleteRequest("orders", "A", true, 1, 2), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_THAT(SortedKeys(*conn_), ElementsAreArray(before));

  a.reset();  // A's stream ends; its handler leaves this daemon
  // Entries remain: refused with the real counts.
  ASSERT_TRUE(WaitFor([&] {
    s = Call(&Stub::DeleteHandler, DeleteRequest("orders", "A"), &resp);
    return !absl::StrContains(s.error_message(), "connected");
  })) << s.error_message();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            "handler 'A' on channel 'orders' holds 1 retry entries and 2 dead letters; nothing "
            "was deleted (to discard them: force with expected_retry_entries=1 "
            "expected_dead_letters=2)");
  // Forced with counts that are not the current ones: nothing deleted.
  for (auto [retry, dead] : {std::pair<uint64_t, uint64_t>{1, 3}, {0, 2}, {0, 0}}) {
    s = Call(&Stub::DeleteHandler, DeleteRequest("orders", "A", true, retry, dead), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << retry << "/" << dead;
    EXPECT_THAT(s.error_message(), HasSubstr("holds 1 retry entries and 2 dead letters, not "));
  }
  EXPECT_THAT(SortedKeys(*conn_), ElementsAreArray(before));
  EXPECT_THAT(GroupNames(*conn_, "orders"), ElementsAre("A", "B"));
  EXPECT_THAT(GroupNames(*conn_, "orders.A.retry"), ElementsAre("A-retry"));
  EXPECT_EQ(XLen("orders.A.dlq"), 2);

  // Forced with the exact counts: A's keys go, B's stay.
  resp.Clear();
  s = Call(&Stub::DeleteHandler, DeleteRequest("orders", "A", true, 1, 2), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.handler().channel(), "orders");
  EXPECT_EQ(resp.handler().handler_id(), "A");
  EXPECT_THAT(resp.destroyed_groups(), ElementsAre("orders A", "orders.A.retry A-retry"));
  EXPECT_THAT(resp.deleted_keys(),
              ElementsAre("orders.A.retry", "orders.A.retry.due", "orders.A.dlq"));
  EXPECT_EQ(resp.retry_entries(), 1u);
  EXPECT_EQ(resp.dead_letters(), 2u);
  EXPECT_TRUE(resp.unregistered());
  EXPECT_TRUE(resp.unpaused());
  EXPECT_THAT(SortedKeys(*conn_), ElementsAre("orders", "orders.B.dlq", "{redrive}:handlers"));
  EXPECT_THAT(GroupNames(*conn_, "orders"), ElementsAre("B"));
  EXPECT_EQ(XLen("orders.B.dlq"), 1);
  // B's registration and its presence heartbeat (B is connected) remain.
  EXPECT_THAT(HashFields(*conn_, "{redrive}:handlers"), ElementsAre("orders B", "orders B a1"));
  EXPECT_THAT(daemon_->Log(), HasSubstr("admin DeleteHandler by admin-test: "));
  EXPECT_THAT(daemon_->Log(), HasSubstr("result=deleted retry_entries=1 dead_letters=2"));

  // B still receives every new message; A is gone from the Admin view.
  const std::vector<std::string> fresh = PublishAll("orders", {R"({"n":"after"})"});
  ASSERT_TRUE(b->WaitForDeliveries(5));
  EXPECT_EQ(b->deliveries()[4].entry_id(), fresh[0]);
  b->Ack({b->deliveries()[4].delivery_id()});
  ASSERT_TRUE(WaitFor([&] { return PendingCount(*conn_, "orders", "B") == 0; }));
  v1::ListHandlersResponse list;
  ASSERT_TRUE(Call(&Stub::ListHandlers, v1::ListHandlersRequest(), &list).ok());
  ASSERT_EQ(list.handlers_size(), 1);
  EXPECT_EQ(list.handlers(0).handler().handler_id(), "B");
  EXPECT_EQ(Call(&Stub::DeleteHandler, DeleteRequest("orders", "A"), &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // B, once its stream ended, with its one dead letter confirmed.
  b.reset();
  ASSERT_TRUE(WaitFor([&] {
    resp.Clear();
    return Call(&Stub::DeleteHandler, DeleteRequest("orders", "B", true, 0, 1), &resp).ok();
  }));
  EXPECT_THAT(resp.destroyed_groups(), ElementsAre("orders B"));
  EXPECT_THAT(resp.deleted_keys(), ElementsAre("orders.B.dlq"));
  EXPECT_FALSE(resp.unpaused());
  EXPECT_THAT(SortedKeys(*conn_), ElementsAre("orders"));
  EXPECT_THAT(GroupNames(*conn_, "orders"), IsEmpty());
  EXPECT_EQ(XLen("orders"), 5);  // the channel keeps every entry
}

// Another daemon's stream counts as connected while its heartbeat is fresh:
// a live one refuses the delete, a stream that ended frees it at once, and a
// daemon killed with a stream open stops counting once its heartbeat is
// kPresenceTtl old.
TEST_F(AdminTest, DeleteHandlerRefusedWhileAnotherDaemonHasItsStream) {
  Boot();
  auto other = StartDaemon("b1");
  ASSERT_NE(other, nullptr);
  auto other_client = Client::Connect(other->address());
  ASSERT_TRUE(other_client->WaitForConnected(absl::Seconds(10)));

  auto a = Subscribe(RegisterFor("orders", "A"), other_client.get());
  v1::DeleteHandlerResponse resp;
  grpc::Status s = Call(&Stub::DeleteHandler, DeleteRequest("orders", "A"), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            "handler 'A' on channel 'orders' has Subscribe streams connected to daemon(s) b1; "
            "stop them before deleting it");
  // b1 renews its heartbeat while the stream stays connected.
  auto beat = [&] {
    absl::StatusOr<RedisReply> r = conn_->Command({"HGET", "{redrive}:handlers", "orders A b1"});
    return r.ok() && r->is_string() ? std::stoll(r->str) : int64_t{0};
  };
  const int64_t first_beat = beat();
  ASSERT_GT(first_beat, 0);
  ASSERT_TRUE(WaitFor([&] { return beat() > first_beat; }));
  s = Call(&Stub::DeleteHandler, DeleteRequest("orders", "A"), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_THAT(GroupNames(*conn_, "orders"), ElementsAre("A"));

  // The stream ends on b1: deletable.
  a.reset();
  ASSERT_TRUE(WaitFor(
      [&] { return Call(&Stub::DeleteHandler, DeleteRequest("orders", "A"), &resp).ok(); }));
  EXPECT_THAT(SortedKeys(*conn_), ElementsAre("orders"));

  // b1 dies with a stream of C open: refused until its heartbeat is stale.
  auto c = Subscribe(RegisterFor("orders", "C"), other_client.get());
  ASSERT_TRUE(WaitFor([&] {
    return HashFields(*conn_, "{redrive}:handlers") ==
           std::vector<std::string>{"orders C", "orders C b1"};
  }));
  other->Kill9();
  s = Call(&Stub::DeleteHandler, DeleteRequest("orders", "C"), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("connected to daemon(s) b1"));
  ASSERT_TRUE(
      WaitFor([&] { return Call(&Stub::DeleteHandler, DeleteRequest("orders", "C"), &resp).ok(); },
              absl::Seconds(30)));
  // The stale presence field went with the registration.
  EXPECT_THAT(SortedKeys(*conn_), ElementsAre("orders"));
  EXPECT_THAT(GroupNames(*conn_, "orders"), IsEmpty());
}

TEST_F(AdminTest, DeleteHandlerRejectsBadRequestsWithPreciseStatuses) {
  Boot();
  auto a = Subscribe(RegisterFor("orders", "A"));
  a.reset();
  const std::vector<std::string> keys = SortedKeys(*conn_);
  v1::DeleteHandlerResponse resp;
  struct Case {
    v1::DeleteHandlerRequest request;
    grpc::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {DeleteRequest("", "A"), grpc::StatusCode::INVALID_ARGUMENT, "handler.channel is required"},
      {DeleteRequest("orders.dlq", "A"), grpc::StatusCode::INVALID_ARGUMENT,
       "handler.channel must not end in .retry or .dlq (reserved for retry and dead-letter "
       "streams)"},
      {DeleteRequest("orders", "a b"), grpc::StatusCode::INVALID_ARGUMENT,
       "handler.handler_id has a character outside [A-Za-z0-9._:-] at byte 1"},
      {DeleteRequest("orders", "A", false, 0, 1), grpc::StatusCode::INVALID_ARGUMENT,
       "expected_retry_entries and expected_dead_letters apply only with force"},
      {DeleteRequest("orders", "nobody"), grpc::StatusCode::NOT_FOUND,
       "no handler 'nobody' on channel 'orders'"},
      {DeleteRequest("elsewhere", "A", true, 0, 0), grpc::StatusCode::NOT_FOUND,
       "no handler 'A' on channel 'elsewhere'"},
  };
  for (const Case& c : cases) {
    grpc::Status s = Call(&Stub::DeleteHandler, c.request, &resp);
    EXPECT_EQ(s.error_code(), c.code) << c.request.DebugString();
    EXPECT_EQ(s.error_message(), c.message);
  }
  // Without the token: UNAUTHENTICATED, and nothing deleted.
  EXPECT_EQ(Call(&Stub::DeleteHandler, DeleteRequest("orders", "A"), &resp, "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(SortedKeys(*conn_), keys);
  EXPECT_THAT(GroupNames(*conn_, "orders"), ElementsAre("A"));
}

}  // namespace
}  // namespace redrive
