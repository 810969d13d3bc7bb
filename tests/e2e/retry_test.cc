// End to end: retries, backoff, leases, dead letters and crash safety
// through the real redrived binary and a real redis-server (R-B4, R-B7,
// R-C2, R-C4, R-D1..R-D6, R-H1, R-J1; EggAI issue #225).
//
// Every test waits on conditions (WaitFor, WaitForDeliveries). Fixed waits
// appear only where a test proves that something does NOT happen within a
// window, and each such window is named as such.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/envelope.h"
#include "daemon/stream_entry.h"
#include "nlohmann/json.hpp"
#include "redrive/client.h"
#include "tests/testing/daemon_process.h"
#include "tests/testing/envelope_bytes.h"
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
using ::redrive::testing::PutU16;
using ::redrive::testing::PutU32;
using ::redrive::testing::SortedKeys;
using ::redrive::testing::SpecEnvelope;
using ::redrive::testing::TakeOk;
using ::redrive::testing::TestRedisServer;
using ::redrive::testing::TestSubscriber;
using ::redrive::testing::WaitFor;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

// The reclaim tick every test starts redrived with (also the default).
constexpr int kTickMs = 100;
// Scheduling slack for timing bounds: the tests run on a 2-core VM next to
// a compiler, redis-server and one or two daemons, so a wake-up can be a few
// hundred ms late. The bounds are delay + one tick + this.
constexpr absl::Duration kSlack = absl::Milliseconds(250);

using ::redrive::testing::RegisterFor;

void SetPolicy(v1::Register& r, uint32_t max_retries, uint32_t initial_backoff_ms,
               double multiplier, double jitter = 0.0) {
  v1::RetryPolicy* p = r.mutable_retry_policy();
  p->set_max_retries(max_retries);
  p->set_initial_backoff_ms(initial_backoff_ms);
  p->set_multiplier(multiplier);
  p->set_jitter(jitter);
}

v1::SubscribeRequest NackRequest(uint64_t id, const std::string& reason,
                                 const std::string& code = "",
                                 std::optional<uint32_t> delay_ms = std::nullopt) {
  v1::SubscribeRequest req;
  v1::Verb* v = req.mutable_verbs()->add_verbs();
  v->set_delivery_id(id);
  v->mutable_nack()->set_reason(reason);
  v->mutable_nack()->set_error_code(code);
  if (delay_ms.has_value()) v->mutable_nack()->set_delay_ms(*delay_ms);
  return req;
}

v1::SubscribeRequest ExtendRequest(uint64_t id) {
  v1::SubscribeRequest req;
  v1::Verb* v = req.mutable_verbs()->add_verbs();
  v->set_delivery_id(id);
  v->mutable_extend();
  return req;
}

v1::SubscribeRequest TerminateRequest(uint64_t id, const std::string& reason,
                                      const std::string& code) {
  v1::SubscribeRequest req;
  v1::Verb* v = req.mutable_verbs()->add_verbs();
  v->set_delivery_id(id);
  v->mutable_terminate()->set_reason(reason);
  v->mutable_terminate()->set_error_code(code);
  return req;
}

// The value of the first field `name` of `e`, or nullopt.
std::optional<std::string> Field(const StreamEntry& e, absl::string_view name) {
  for (const auto& [k, v] : e.fields) {
    if (k == name) return v;
  }
  return std::nullopt;
}

std::string FieldOr(const StreamEntry& e, absl::string_view name) {
  return Field(e, name).value_or("<absent>");
}

std::vector<std::string> FieldNames(const StreamEntry& e) {
  std::vector<std::string> names;
  for (const auto& [k, v] : e.fields) names.push_back(k);
  return names;
}

// The decoded `__data__` of `e` (a failed test and an empty entry if absent
// or undecodable).
DecodedEntry Data(const StreamEntry& e) {
  std::optional<std::string> data = Field(e, kDataField);
  EXPECT_TRUE(data.has_value()) << "entry " << e.id << " has no __data__";
  if (!data.has_value()) return {};
  absl::StatusOr<DecodedEntry> d = DecodeDataValue(*data);
  EXPECT_TRUE(d.ok()) << "entry " << e.id << ": " << d.status();
  return d.ok() ? *std::move(d) : DecodedEntry{};
}

json ParseJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << text;
  return j;
}

std::string HeaderOr(const HeaderList& headers, absl::string_view key) {
  for (const auto& [k, v] : headers) {
    if (k == key) return v;
  }
  return "<absent>";
}

// The x-redrive-* fields every dead letter carries (retry_fields.h).
const std::vector<std::string> kDeadLetterFieldNames = {"__data__",
                                                        "x-redrive-reason",
                                                        "x-redrive-channel",
                                                        "x-redrive-handler",
                                                        "x-redrive-source-stream",
                                                        "x-redrive-source-id",
                                                        "x-redrive-original-id",
                                                        "x-redrive-attempts",
                                                        "x-redrive-dead-lettered-ms",
                                                        "x-redrive-last-error",
                                                        "x-redrive-last-error-code",
                                                        "x-redrive-first-failure-ms",
                                                        "x-redrive-history"};

class RetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = TestRedisServer::Start();
    ASSERT_NE(redis_, nullptr);
    conn_ = redis_->Connect();
  }

  std::unique_ptr<DaemonProcess> StartDaemon(const std::string& instance,
                                             std::vector<std::string> extra = {}) {
    DaemonProcess::Options o;
    o.redis_url = redis_->url();
    o.extra_args = std::move(extra);
    o.extra_args.push_back("--instance-id=" + instance);
    o.extra_args.push_back(absl::StrCat("--reclaim-tick-ms=", kTickMs));
    return DaemonProcess::Start(o);
  }

  // Starts daemon_ / client_ (the usual single daemon).
  void Boot(const std::string& instance = "r1", std::vector<std::string> extra = {}) {
    daemon_ = StartDaemon(instance, std::move(extra));
    ASSERT_NE(daemon_, nullptr);
    client_ = Client::Connect(daemon_->address());
    ASSERT_TRUE(client_->WaitForConnected(absl::Seconds(10)));
  }

  std::unique_ptr<TestSubscriber> Subscribe(const v1::Register& reg, Client* client = nullptr) {
    auto sub = std::make_unique<TestSubscriber>((client ? client : client_.get())->broker(), reg);
    EXPECT_TRUE(sub->WaitRegistered()) << sub->status().error_message();
    return sub;
  }

  // Publishes `payloads` in one batch; their entry ids.
  std::vector<std::string> PublishAll(const std::string& channel,
                                      const std::vector<std::string>& payloads,
                                      Client* client = nullptr) {
    v1::PublishBatchRequest b;
    b.set_channel(channel);
    for (const std::string& p : payloads) b.add_messages()->set_payload(p);
    absl::StatusOr<v1::PublishBatchResponse> r = (client ? client : client_.get())->PublishBatch(b);
    EXPECT_THAT(r, IsOk());
    if (!r.ok()) return {};
    return {r->entry_ids().begin(), r->entry_ids().end()};
  }

  std::string Xadd(const std::string& stream, const std::string& data) {
    absl::StatusOr<RedisReply> r = conn_->Command({"XADD", stream, "*", "__data__", data});
    EXPECT_THAT(r, IsOk());
    EXPECT_TRUE(r.ok() && r->is_string()) << (r.ok() ? r->DebugString() : "");
    return r.ok() ? r->str : "";
  }

  std::vector<StreamEntry> XRange(const std::string& stream) {
    return ::redrive::testing::XRangeAll(*conn_, stream);
  }

  int64_t XLen(const std::string& stream) { return ::redrive::testing::XLenOf(*conn_, stream); }

  bool Exists(const std::string& key) {
    absl::StatusOr<RedisReply> r = conn_->Command({"EXISTS", key});
    return r.ok() && r->is_integer() && r->integer == 1;
  }

  std::string LastDelivered(const std::string& stream, const std::string& group) {
    return ::redrive::testing::LastDeliveredId(*conn_, stream, group);
  }

  std::vector<std::string> Keys() { return SortedKeys(*conn_); }

  int64_t Pending(const std::string& stream, const std::string& group) {
    return PendingCount(*conn_, stream, group);
  }

  // Every key ending in ".retry.retry" (there must never be one, R-C2).
  std::vector<std::string> RetryRetryKeys() {
    std::vector<std::string> out;
    for (const std::string& k : Keys()) {
      if (absl::EndsWith(k, ".retry.retry")) out.push_back(k);
    }
    return out;
  }

  std::unique_ptr<TestRedisServer> redis_;
  std::unique_ptr<RedisConnection> conn_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<Client> client_;
};

// ---------------------------------------------------------------------------
// 1. EggAI #225: one handler's failures never reach another handler.

TEST_F(RetryTest, Issue225HandlerFailuresStayWithTheirHandler) {
  Boot();
  const std::string ch = "orders";
  v1::Register ra = RegisterFor(ch, "A");
  SetPolicy(ra, /*max_retries=*/2, /*initial_backoff_ms=*/100, /*multiplier=*/1.0);
  v1::Register rb = RegisterFor(ch, "B");
  SetPolicy(rb, 2, 100, 1.0);
  auto a = Subscribe(ra);
  auto b = Subscribe(rb);
  ASSERT_EQ(a->registered().names().retry_stream(), "orders.A.retry");
  ASSERT_EQ(a->registered().names().dlq_stream(), "orders.A.dlq");

  const std::string payload = R"({"order":42})";
  v1::PublishRequest pub;
  pub.set_channel(ch);
  pub.mutable_message()->set_payload(payload);
  pub.mutable_message()->set_content_type("application/json");
  absl::StatusOr<v1::PublishResponse> published = client_->Publish(pub);
  ASSERT_THAT(published, IsOk());
  const std::string main_id = published->entry_id();

  ASSERT_TRUE(b->WaitForDeliveries(1));
  {
    const v1::Delivery d = b->deliveries()[0];
    EXPECT_EQ(d.payload(), payload);
    EXPECT_EQ(d.attempt(), 1u);
    EXPECT_EQ(d.entry_id(), main_id);
    b->Ack({d.delivery_id()});
  }

  // A fails three times: attempt 1 from the main stream, 2 and 3 from A's
  // own retry stream (never a ".retry.retry").
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    ASSERT_TRUE(a->WaitForDeliveries(attempt)) << "attempt " << attempt;
    const v1::Delivery d = a->deliveries()[attempt - 1];
    EXPECT_EQ(d.payload(), payload) << "attempt " << attempt;
    EXPECT_EQ(d.attempt(), attempt);
    EXPECT_EQ(d.max_attempts(), 3u);
    EXPECT_EQ(d.channel(), ch);
    EXPECT_EQ(d.content_type(), "application/json");
    EXPECT_EQ(d.correlation_id(), published->correlation_id());
    EXPECT_EQ(d.original_entry_id(), main_id);
    if (attempt == 1) {
      EXPECT_EQ(d.stream(), ch);
      EXPECT_EQ(d.entry_id(), main_id);
      EXPECT_EQ(d.previous_error(), "");
    } else {
      EXPECT_EQ(d.stream(), "orders.A.retry");
      EXPECT_NE(d.entry_id(), main_id);
      EXPECT_EQ(d.previous_error(), absl::StrCat("db down #", attempt - 1));
      EXPECT_EQ(d.previous_error_code(), "E_DB");
    }
    ASSERT_TRUE(a->Send(NackRequest(d.delivery_id(), absl::StrCat("db down #", attempt), "E_DB")));
  }

  ASSERT_TRUE(WaitFor([&] { return XLen("orders.A.dlq") == 1; }));
  // The due zset disappears once empty; acks are asynchronous.
  ASSERT_TRUE(WaitFor([&] {
    return !Exists("orders.A.retry.due") && Pending(ch, "A") == 0 && Pending(ch, "B") == 0 &&
           Pending("orders.A.retry", "A-retry") == 0;
  })) << absl::StrJoin(Keys(), ",");
  // Window: no fourth delivery to A, no second one to B.
  EXPECT_FALSE(a->WaitForDeliveries(4, absl::Milliseconds(400)));
  EXPECT_EQ(a->delivery_count(), 3u);
  EXPECT_EQ(b->delivery_count(), 1u);

  // A's retry stream: exactly two entries, EggAI metadata in the body.
  const std::vector<StreamEntry> retries = XRange("orders.A.retry");
  ASSERT_EQ(retries.size(), 2u);
  EXPECT_EQ(a->deliveries()[1].entry_id(), retries[0].id);
  EXPECT_EQ(a->deliveries()[2].entry_id(), retries[1].id);
  for (int i = 0; i < 2; ++i) {
    const DecodedEntry d = Data(retries[i]);
    EXPECT_EQ(d.format, EntryFormat::kBinaryV1);
    EXPECT_EQ(d.body, absl::StrCat(R"({"order":42,"_retry_count":")", i + 1,
                                   R"(","_original_message_id":")", main_id, R"("})"));
    EXPECT_EQ(FieldOr(retries[i], "x-redrive-last-error"), absl::StrCat("db down #", i + 1));
  }

  // A's dead letter.
  const std::vector<StreamEntry> dlq = XRange("orders.A.dlq");
  ASSERT_EQ(dlq.size(), 1u);
  const StreamEntry& dl = dlq[0];
  EXPECT_THAT(FieldNames(dl), UnorderedElementsAreArray(kDeadLetterFieldNames));
  EXPECT_EQ(FieldOr(dl, "x-redrive-reason"), "max_retries");
  EXPECT_EQ(FieldOr(dl, "x-redrive-handler"), "A");
  EXPECT_EQ(FieldOr(dl, "x-redrive-channel"), ch);
  EXPECT_EQ(FieldOr(dl, "x-redrive-source-stream"), "orders.A.retry");
  EXPECT_EQ(FieldOr(dl, "x-redrive-source-id"), retries[1].id);
  EXPECT_EQ(FieldOr(dl, "x-redrive-original-id"), main_id);
  EXPECT_EQ(FieldOr(dl, "x-redrive-attempts"), "3");
  EXPECT_EQ(FieldOr(dl, "x-redrive-last-error"), "db down #3");
  EXPECT_EQ(FieldOr(dl, "x-redrive-last-error-code"), "E_DB");
  const json history = ParseJson(FieldOr(dl, "x-redrive-history"));
  ASSERT_TRUE(history.is_array()) << history.dump();
  ASSERT_EQ(history.size(), 3u) << history.dump();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(history[i].value("attempt", -1), i + 1) << history.dump();
    EXPECT_EQ(history[i].value("outcome", ""), "nack");
    EXPECT_EQ(history[i].value("error", ""), absl::StrCat("db down #", i + 1));
    EXPECT_EQ(history[i].value("error_code", ""), "E_DB");
    EXPECT_EQ(history[i].value("consumer", ""), "A-r1");
  }
  const DecodedEntry data = Data(dl);
  EXPECT_EQ(data.format, EntryFormat::kBinaryV1);
  // The envelope headers of the published message travel unchanged.
  const std::vector<StreamEntry> main_entries = XRange(ch);
  ASSERT_EQ(main_entries.size(), 1u);
  EXPECT_EQ(data.headers, Data(main_entries[0]).headers);
  EXPECT_EQ(HeaderOr(data.headers, "correlation_id"), published->correlation_id());
  const json body = ParseJson(data.body);
  ASSERT_TRUE(body.is_object()) << data.body;
  EXPECT_EQ(body.value("order", -1), 42);
  EXPECT_EQ(body.value("_dlq_reason", ""), "max_retries");
  EXPECT_EQ(body.value("_dlq_handler", ""), "A");
  EXPECT_EQ(body.value("_dlq_source", ""), ch);
  EXPECT_EQ(body.value("_dlq_retries", ""), "2");
  EXPECT_EQ(body.value("_original_message_id", ""), main_id);
  EXPECT_EQ(body.value("_retry_count", ""), "0");
  const std::string at = body.value("_dlq_at", "");
  EXPECT_EQ(data.body,
            absl::StrCat(R"({"order":42,"_retry_count":"0","_original_message_id":")", main_id,
                         R"(","_dlq_source":"orders","_dlq_handler":"A","_dlq_at":")", at,
                         R"(","_dlq_reason":"max_retries","_dlq_retries":"2"})"));

  // B has no retry or DLQ key; nothing else exists.
  EXPECT_THAT(Keys(),
              ElementsAre("orders", "orders.A.dlq", "orders.A.retry", "{redrive}:handlers"));
  EXPECT_THAT(RetryRetryKeys(), ElementsAre());
  EXPECT_EQ(Pending(ch, "A"), 0);
  EXPECT_EQ(Pending(ch, "B"), 0);
  EXPECT_EQ(Pending("orders.A.retry", "A-retry"), 0);
}

// ---------------------------------------------------------------------------
// 2. Backoff timing (R-D2): not earlier than the delay, not later than the
// delay + one reclaim tick (+ scheduling slack); a NACK's delay_ms wins.

TEST_F(RetryTest, BackoffTimingAndNackDelayOverride) {
  Boot();
  const std::string ch = "timed";
  v1::Register reg = RegisterFor(ch, "h", 10);
  SetPolicy(reg, /*max_retries=*/3, /*initial_backoff_ms=*/300, /*multiplier=*/2.0);
  auto sub = Subscribe(reg);
  const absl::Duration tick = absl::Milliseconds(kTickMs);
  struct Measured {
    uint32_t attempt;
    absl::Duration expected;
    absl::Duration elapsed;
  };
  std::vector<Measured> measured;

  PublishAll(ch, {"slow"});
  ASSERT_TRUE(sub->WaitForDeliveries(1));
  // attempt 1 -> 2 after 300 ms; 2 -> 3 after 600 ms; 3 -> 4 with
  // delay_ms 0 instead of the policy's 1200 ms.
  const std::vector<std::pair<absl::Duration, std::optional<uint32_t>>> steps = {
      {absl::Milliseconds(300), std::nullopt},
      {absl::Milliseconds(600), std::nullopt},
      {absl::ZeroDuration(), 0u}};
  for (size_t i = 0; i < steps.size(); ++i) {
    const v1::Delivery d = sub->deliveries()[i];
    ASSERT_EQ(d.attempt(), i + 1);
    const absl::Time sent = absl::Now();
    ASSERT_TRUE(sub->Send(NackRequest(d.delivery_id(), "again", "", steps[i].second)));
    ASSERT_TRUE(sub->WaitForDeliveries(i + 2, absl::Seconds(5))) << "attempt " << i + 2;
    measured.push_back({static_cast<uint32_t>(i + 2), steps[i].first, absl::Now() - sent});
  }
  // A longer delay_ms than the backoff (300 ms) is honoured too.
  PublishAll(ch, {"later"});
  ASSERT_TRUE(sub->WaitForDeliveries(5));
  {
    const v1::Delivery d = sub->deliveries()[4];
    ASSERT_EQ(d.payload(), "later");
    const absl::Time sent = absl::Now();
    ASSERT_TRUE(sub->Send(NackRequest(d.delivery_id(), "not yet", "", 900u)));
    ASSERT_TRUE(sub->WaitForDeliveries(6, absl::Seconds(5)));
    measured.push_back({2, absl::Milliseconds(900), absl::Now() - sent});
  }
  for (const Measured& m : measured) {
    std::cerr << "[ timing ] attempt " << m.attempt << ": expected " << m.expected << ", took "
              << m.elapsed << "\n";
    EXPECT_GE(m.elapsed, m.expected) << "attempt " << m.attempt << " came early";
    EXPECT_LE(m.elapsed, m.expected + tick + kSlack)
        << "attempt " << m.attempt << " came late: " << m.elapsed << " for " << m.expected;
  }
  const std::vector<v1::Delivery> all = sub->deliveries();
  ASSERT_EQ(all.size(), 6u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(all[i].payload(), "slow");
    EXPECT_EQ(all[i].attempt(), static_cast<uint32_t>(i + 1));
    EXPECT_EQ(all[i].original_entry_id(), all[0].entry_id());
  }
  EXPECT_EQ(all[5].payload(), "later");
  EXPECT_EQ(all[5].attempt(), 2u);
  EXPECT_EQ(all[5].previous_error(), "not yet");
  sub->Ack({all[3].delivery_id(), all[5].delivery_id()});
  ASSERT_TRUE(WaitFor([&] {
    return Pending(ch, "h") == 0 && Pending("timed.h.retry", "h-retry") == 0 &&
           !Exists("timed.h.retry.due");
  }));
  EXPECT_THAT(Keys(), ElementsAre("timed", "timed.h.retry", "{redrive}:handlers"));
  EXPECT_EQ(XLen("timed.h.retry"), 4);
}

// ---------------------------------------------------------------------------
// 3. Leases (R-D3): an unanswered delivery is retried right after its lease
// (backoff 0) from the retry stream; EXTEND keeps a delivery.

TEST_F(RetryTest, LeaseExpiryRetriesThroughTheRetryStreamAndExtendKeeps) {
  Boot();
  const std::string ch = "leased";
  v1::Register reg = RegisterFor(ch, "h", 10);
  reg.set_lease_ms(1000);
  SetPolicy(reg, /*max_retries=*/5, /*initial_backoff_ms=*/0, /*multiplier=*/1.0);
  auto sub = Subscribe(reg);
  const absl::Time published_at = absl::Now();
  const std::vector<std::string> ids = PublishAll(ch, {"idle", "busy"});
  ASSERT_EQ(ids.size(), 2u);
  ASSERT_TRUE(sub->WaitForDeliveries(2));
  const std::vector<v1::Delivery> first = sub->deliveries();
  ASSERT_EQ(first[0].payload(), "idle");
  ASSERT_EQ(first[1].payload(), "busy");

  // For 3 s: EXTEND "busy" every 300 ms, never answer "idle" (attempt 1).
  std::optional<absl::Time> redelivered_at;
  const absl::Time until = absl::Now() + absl::Seconds(3);
  absl::Time next_extend = absl::Now();
  while (absl::Now() < until) {
    if (absl::Now() >= next_extend) {
      ASSERT_TRUE(sub->Send(ExtendRequest(first[1].delivery_id())));
      next_extend += absl::Milliseconds(300);
    }
    if (!redelivered_at.has_value() && sub->delivery_count() >= 3) {
      redelivered_at = absl::Now();
      sub->Ack({sub->deliveries()[2].delivery_id()});
    }
    sub->WaitForDeliveries(redelivered_at.has_value() ? 4 : 3, absl::Milliseconds(10));
  }
  ASSERT_TRUE(redelivered_at.has_value());
  const absl::Duration after = *redelivered_at - published_at;
  std::cerr << "[ timing ] lease 1000 ms, redelivered " << after << " after publishing\n";
  EXPECT_GE(after, absl::Milliseconds(1000));
  // Lease expiry is seen at a tick, the retry moved at the next one.
  EXPECT_LE(after, absl::Milliseconds(1000) + 2 * absl::Milliseconds(kTickMs) + kSlack) << after;

  const std::vector<v1::Delivery> all = sub->deliveries();
  ASSERT_EQ(all.size(), 3u) << "the extended delivery was redelivered";
  const v1::Delivery& re = all[2];
  EXPECT_EQ(re.payload(), "idle");
  EXPECT_EQ(re.attempt(), 2u);
  EXPECT_EQ(re.stream(), "leased.h.retry");
  EXPECT_EQ(re.original_entry_id(), ids[0]);
  EXPECT_EQ(re.previous_error_code(), "LEASE_EXPIRED");
  EXPECT_EQ(re.previous_error(), "lease of 1000 ms expired without ACK or EXTEND");

  sub->Ack({first[1].delivery_id()});
  ASSERT_TRUE(WaitFor([&] {
    return Pending(ch, "h") == 0 && Pending("leased.h.retry", "h-retry") == 0 &&
           !Exists("leased.h.retry.due");
  }));
  EXPECT_TRUE(sub->notices().empty()) << sub->notices()[0].message();
  EXPECT_THAT(Keys(), ElementsAre("leased", "leased.h.retry", "{redrive}:handlers"));
  const std::vector<StreamEntry> retries = XRange("leased.h.retry");
  ASSERT_EQ(retries.size(), 1u);
  EXPECT_EQ(Data(retries[0]).body, "idle");
  EXPECT_EQ(HeaderOr(Data(retries[0]).headers, "x-redrive-original-id"), ids[0]);
  EXPECT_EQ(HeaderOr(Data(retries[0]).headers, "x-redrive-attempt"), "1");
}

// ---------------------------------------------------------------------------
// 4. Crash safety (R-D4, R-H1): kill -9 the daemon four times while entries
// are in flight, waiting in the due zset and being acked; nothing is lost,
// nothing is dead-lettered twice, no retry entry is duplicated.

TEST_F(RetryTest, KillNineRepeatedlyLosesAndDuplicatesNothing) {
  const std::string ch = "crash";
  const std::string instance = "crashy";
  const std::vector<std::string> flags = {"--sweep-interval-ms=200"};
  v1::Register reg = RegisterFor(ch, "c", 8);
  reg.set_lease_ms(1000);
  SetPolicy(reg, /*max_retries=*/1, /*initial_backoff_ms=*/200, /*multiplier=*/1.0);
  constexpr int kRounds = 4;
  constexpr int kPerRound = 50;  // N = 200

  std::vector<std::unique_ptr<DaemonProcess>> dead;  // kept for their logs
  std::unique_ptr<TestSubscriber> sub;
  size_t seen = 0;                      // deliveries of `sub` handled
  std::map<std::string, int> index_of;  // main id -> payload index
  std::set<std::string> acked;          // original ids the client ACKed
  std::string last_published;
  int nacks = 0;
  int bad_deliveries = 0;
  int expired = 0;  // deliveries retried after a lease expiry (orphans of a kill)

  auto boot = [&] {
    Boot(instance, flags);
    sub = Subscribe(reg);
    seen = 0;
  };
  // Answers at most 2 deliveries per call (about 200/s), so a kill always
  // finds deliveries in flight.
  auto step = [&] {
    const std::vector<v1::Delivery> all = sub->deliveries();
    v1::SubscribeRequest req;
    for (int n = 0; seen < all.size() && n < 2; ++seen, ++n) {
      const v1::Delivery& d = all[seen];
      int idx = -1;
      if (!absl::SimpleAtoi(absl::string_view(d.payload()).substr(2), &idx) || d.attempt() < 1 ||
          d.attempt() > 2) {
        ++bad_deliveries;
        ADD_FAILURE() << "unexpected delivery " << d.ShortDebugString();
        continue;
      }
      if (d.previous_error_code() == "LEASE_EXPIRED") ++expired;
      v1::Verb* v = req.mutable_verbs()->add_verbs();
      v->set_delivery_id(d.delivery_id());
      const bool fail = (idx % 3 == 0 && d.attempt() == 1) || (idx % 6 == 0 && d.attempt() == 2);
      if (fail) {
        v->mutable_nack()->set_reason(absl::StrCat("nack ", idx, " attempt ", d.attempt()));
        ++nacks;
      } else {
        v->mutable_ack();
        acked.insert(d.original_entry_id());
      }
    }
    if (req.verbs().verbs_size() > 0) sub->Send(req);
  };
  auto run_for = [&](absl::Duration d) {
    const absl::Time until = absl::Now() + d;
    while (absl::Now() < until) {
      step();
      absl::SleepFor(absl::Milliseconds(10));
    }
  };

  boot();
  ASSERT_NE(sub, nullptr);
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::string> payloads;
    for (int i = 0; i < kPerRound; ++i) {
      payloads.push_back(absl::StrCat("m-", round * kPerRound + i));
    }
    const std::vector<std::string> ids = PublishAll(ch, payloads);
    ASSERT_EQ(ids.size(), payloads.size());
    for (int i = 0; i < kPerRound; ++i) index_of[ids[i]] = round * kPerRound + i;
    last_published = ids.back();
    // Work for a while (varied), then kill -9 mid-flight and restart with
    // the same instance id on the same Redis.
    run_for(absl::Milliseconds(120 + 60 * round));
    sub->Cancel();  // the client sees its stream die with the daemon anyway
    daemon_->Kill9();
    dead.push_back(std::move(daemon_));
    sub.reset();
    client_.reset();
    boot();
    ASSERT_NE(sub, nullptr);
  }
  ASSERT_EQ(index_of.size(), static_cast<size_t>(kRounds * kPerRound));

  auto dlq_originals = [&] {
    std::vector<std::string> out;
    for (const StreamEntry& e : XRange("crash.c.dlq")) {
      out.push_back(FieldOr(e, "x-redrive-original-id"));
    }
    return out;
  };
  auto all_settled = [&] {
    const std::vector<std::string> dlq = dlq_originals();
    const std::set<std::string> in_dlq(dlq.begin(), dlq.end());
    for (const auto& [id, idx] : index_of) {
      if (in_dlq.count(id) == 0 && acked.count(id) == 0) return false;
    }
    return Pending(ch, "c") == 0 && Pending("crash.c.retry", "c-retry") == 0 &&
           !Exists("crash.c.retry.due");
  };
  const absl::Time until = absl::Now() + absl::Seconds(25);
  bool settled = false;
  while (absl::Now() < until && !(settled = all_settled())) run_for(absl::Milliseconds(100));
  ASSERT_TRUE(settled) << "acked " << acked.size() << ", dead letters " << dlq_originals().size()
                       << ", pending main " << Pending(ch, "c") << ", pending retry "
                       << Pending("crash.c.retry", "c-retry") << ", due zset "
                       << Exists("crash.c.retry.due");
  EXPECT_EQ(bad_deliveries, 0);

  // Every published id exactly once: in the DLQ (no duplicates) or ACKed
  // by the client and never dead-lettered.
  const std::vector<std::string> dlq = dlq_originals();
  const std::set<std::string> in_dlq(dlq.begin(), dlq.end());
  EXPECT_EQ(in_dlq.size(), dlq.size()) << "an entry was dead-lettered twice";
  int acked_only = 0, both = 0;
  for (const auto& [id, idx] : index_of) {
    const bool d = in_dlq.count(id) != 0;
    const bool a = acked.count(id) != 0;
    EXPECT_TRUE(d || a) << "lost: " << id << " (m-" << idx << ")";
    if (a && !d) ++acked_only;
    // ACKed at an attempt whose XACK died with the daemon, then retried
    // and dead-lettered: at-least-once, not a loss.
    if (a && d) ++both;
    // The client never ACKs these: they must all be dead letters.
    if (idx % 6 == 0) {
      EXPECT_TRUE(d) << "m-" << idx << " must be dead-lettered";
      EXPECT_FALSE(a) << "m-" << idx;
    }
  }
  for (const std::string& id : in_dlq) EXPECT_TRUE(index_of.count(id) != 0) << "unknown " << id;
  EXPECT_EQ(static_cast<size_t>(acked_only) + in_dlq.size(), index_of.size());
  for (const StreamEntry& e : XRange("crash.c.dlq")) {
    // max_retries, or disconnected when the last attempt was in flight on a
    // stream that ended (the client re-subscribes around each kill).
    EXPECT_THAT(FieldOr(e, "x-redrive-reason"), ::testing::AnyOf("max_retries", "disconnected"))
        << e.id;
    EXPECT_EQ(FieldOr(e, "x-redrive-attempts"), "2") << e.id;
  }
  // One retry entry at most per original id (max_retries 1): no move was
  // made twice.
  std::map<std::pair<std::string, std::string>, int> retry_count;
  for (const StreamEntry& e : XRange("crash.c.retry")) {
    const DecodedEntry d = Data(e);
    ++retry_count[{HeaderOr(d.headers, "x-redrive-original-id"),
                   HeaderOr(d.headers, "x-redrive-attempt")}];
  }
  for (const auto& [key, n] : retry_count) {
    EXPECT_EQ(n, 1) << "retry entry duplicated: " << key.first << " attempt " << key.second;
    EXPECT_EQ(key.second, "1");
    EXPECT_TRUE(index_of.count(key.first) != 0) << key.first;
  }
  // Every entry of both streams was read by its group.
  EXPECT_EQ(LastDelivered(ch, "c"), last_published);
  const std::vector<StreamEntry> retries = XRange("crash.c.retry");
  if (!retries.empty()) {
    EXPECT_EQ(LastDelivered("crash.c.retry", "c-retry"), retries.back().id);
  }
  EXPECT_THAT(RetryRetryKeys(), ElementsAre());
  std::cerr << "[ crash ] " << index_of.size() << " published, " << acked_only << " acked only, "
            << in_dlq.size() << " dead letters (" << both << " after a lost ack), "
            << retries.size() << " retry entries, " << nacks << " nacks, " << expired
            << " redelivered after a lease expiry, " << dead.size() << " kills\n";
}

// ---------------------------------------------------------------------------
// 5. Two daemons on one Redis (R-D4, R-J1): the movers race on one due zset,
// exactly one wins each move.

TEST_F(RetryTest, TwoDaemonsRacingOnOneHandlerMoveEachRetryOnce) {
  auto d1 = StartDaemon("d1", {"--sweep-interval-ms=200"});
  auto d2 = StartDaemon("d2", {"--sweep-interval-ms=200"});
  ASSERT_NE(d1, nullptr);
  ASSERT_NE(d2, nullptr);
  auto c1 = Client::Connect(d1->address());
  auto c2 = Client::Connect(d2->address());
  const std::string ch = "race";
  v1::Register reg = RegisterFor(ch, "h", 20);
  SetPolicy(reg, /*max_retries=*/2, /*initial_backoff_ms=*/50, /*multiplier=*/1.0);
  auto s1 = Subscribe(reg, c1.get());
  auto s2 = Subscribe(reg, c2.get());
  std::vector<std::string> payloads;
  for (int i = 0; i < 100; ++i) payloads.push_back(absl::StrCat(R"({"n":)", i, "}"));
  const std::vector<std::string> ids = PublishAll(ch, payloads, c1.get());
  ASSERT_EQ(ids.size(), 100u);

  size_t seen[2] = {0, 0};
  TestSubscriber* subs[2] = {s1.get(), s2.get()};
  auto nack_new = [&] {
    for (int k = 0; k < 2; ++k) {
      const std::vector<v1::Delivery> all = subs[k]->deliveries();
      v1::SubscribeRequest req;
      for (; seen[k] < all.size(); ++seen[k]) {
        v1::Verb* v = req.mutable_verbs()->add_verbs();
        v->set_delivery_id(all[seen[k]].delivery_id());
        v->mutable_nack()->set_reason("always");
      }
      if (req.verbs().verbs_size() > 0) subs[k]->Send(req);
    }
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        nack_new();
        return XLen("race.h.dlq") >= 100 && !Exists("race.h.retry.due") && Pending(ch, "h") == 0 &&
               Pending("race.h.retry", "h-retry") == 0;
      },
      absl::Seconds(20)))
      << "dlq " << XLen("race.h.dlq") << " retry " << XLen("race.h.retry");
  EXPECT_GT(s1->delivery_count(), 0u);
  EXPECT_GT(s2->delivery_count(), 0u);
  EXPECT_EQ(s1->delivery_count() + s2->delivery_count(), 300u);

  // Every id: attempts exactly 1, 2, 3 across both daemons.
  std::map<std::string, std::multiset<uint32_t>> attempts;
  for (TestSubscriber* s : subs) {
    for (const v1::Delivery& d : s->deliveries())
      attempts[d.original_entry_id()].insert(d.attempt());
  }
  EXPECT_EQ(attempts.size(), 100u);
  for (const auto& [id, a] : attempts) {
    EXPECT_THAT(a, ElementsAre(1u, 2u, 3u)) << id;
  }

  const std::vector<StreamEntry> dlq = XRange("race.h.dlq");
  EXPECT_EQ(dlq.size(), 100u);
  std::set<std::string> dlq_ids;
  for (const StreamEntry& e : dlq) {
    dlq_ids.insert(FieldOr(e, "x-redrive-original-id"));
    EXPECT_EQ(FieldOr(e, "x-redrive-reason"), "max_retries");
    EXPECT_EQ(FieldOr(e, "x-redrive-attempts"), "3");
  }
  EXPECT_THAT(dlq_ids, UnorderedElementsAreArray(ids));

  const std::vector<StreamEntry> retries = XRange("race.h.retry");
  EXPECT_EQ(retries.size(), 200u);
  std::map<std::pair<std::string, std::string>, int> per_key;
  for (const StreamEntry& e : retries) {
    const json body = ParseJson(Data(e).body);
    ++per_key[{body.value("_original_message_id", ""), body.value("_retry_count", "")}];
  }
  EXPECT_EQ(per_key.size(), 200u) << "duplicate retry entries";
  for (const std::string& id : ids) {
    EXPECT_EQ((per_key[{id, "1"}]), 1) << id;
    EXPECT_EQ((per_key[{id, "2"}]), 1) << id;
  }
  EXPECT_THAT(Keys(), ElementsAre("race", "race.h.dlq", "race.h.retry", "{redrive}:handlers"));
}

TEST_F(RetryTest, OrphansOfAKilledDaemonAreSweptByTheOtherAsAttemptTwo) {
  auto d1 = StartDaemon("o1", {"--sweep-interval-ms=200"});
  auto d2 = StartDaemon("o2", {"--sweep-interval-ms=200"});
  ASSERT_NE(d1, nullptr);
  ASSERT_NE(d2, nullptr);
  auto c1 = Client::Connect(d1->address());
  auto c2 = Client::Connect(d2->address());
  const std::string ch = "orphans";
  v1::Register reg = RegisterFor(ch, "h", 10);
  reg.set_lease_ms(1000);
  SetPolicy(reg, /*max_retries=*/3, /*initial_backoff_ms=*/0, /*multiplier=*/1.0);
  auto holder = Subscribe(reg, c1.get());
  const std::vector<std::string> ids =
      PublishAll(ch, {"o-0", "o-1", "o-2", "o-3", "o-4"}, c1.get());
  ASSERT_TRUE(holder->WaitForDeliveries(5));
  std::vector<std::string> held;
  for (const v1::Delivery& d : holder->deliveries()) held.push_back(d.entry_id());
  EXPECT_THAT(held, ElementsAreArray(ids));
  auto taker = Subscribe(reg, c2.get());
  EXPECT_EQ(taker->registered().names().consumer(), "h-o2");
  const absl::Time killed_at = absl::Now();
  d1->Kill9();  // holding 5 unanswered deliveries

  ASSERT_TRUE(taker->WaitForDeliveries(5, absl::Seconds(10)));
  // Idle for a lease at least (counted from delivery, before the kill).
  EXPECT_GE(absl::Now() - killed_at, absl::Milliseconds(500));
  std::vector<std::string> originals;
  for (const v1::Delivery& d : taker->deliveries()) {
    EXPECT_EQ(d.attempt(), 2u) << d.payload();
    EXPECT_EQ(d.stream(), "orphans.h.retry");
    EXPECT_EQ(d.previous_error_code(), "LEASE_EXPIRED");
    EXPECT_EQ(d.previous_error(), "lease expired on consumer h-o1");
    originals.push_back(d.original_entry_id());
  }
  EXPECT_THAT(originals, UnorderedElementsAreArray(ids));
  EXPECT_THAT(taker->payloads(), UnorderedElementsAre("o-0", "o-1", "o-2", "o-3", "o-4"));
  taker->AckAll();
  ASSERT_TRUE(WaitFor([&] {
    return Pending(ch, "h") == 0 && Pending("orphans.h.retry", "h-retry") == 0 &&
           !Exists("orphans.h.retry.due");
  }));
  // Window: nothing is delivered twice.
  EXPECT_FALSE(taker->WaitForDeliveries(6, absl::Milliseconds(300)));
  EXPECT_EQ(XLen("orphans.h.retry"), 5);
  EXPECT_THAT(Keys(), ElementsAre("orphans", "orphans.h.retry", "{redrive}:handlers"));
}

// ---------------------------------------------------------------------------
// 6. Poison (R-D6): corrupt envelopes and unusable retry metadata go to the
// DLQ with their raw bytes; non-object JSON and non-JSON bodies are payloads.

TEST_F(RetryTest, PoisonGoesToTheDlqRawAndNeverBlocks) {
  Boot();
  const std::string ch = "poisoned";
  v1::Register reg = RegisterFor(ch, "p", 10);
  SetPolicy(reg, /*max_retries=*/3, /*initial_backoff_ms=*/50, /*multiplier=*/1.0);
  auto sub = Subscribe(reg);

  // (a) The binary magic, version 1, but data_start far past the value.
  std::string corrupt("\x89\x42\x49\x4E\x0D\x0A\x1A\x0A", 8);
  PutU16(corrupt, 1);
  PutU32(corrupt, 18);
  PutU32(corrupt, 4096);
  PutU16(corrupt, 0);
  corrupt += R"({"order":1})";
  // (b) A JSON object body whose _retry_count is not a decimal integer.
  const std::string abc = R"({"order":2,"_retry_count":"abc"})";
  // (c) The same with a float, inside a well-formed envelope with headers.
  const std::string float_body = R"({"order":3,"_retry_count":1.5})";
  const std::string float_env = SpecEnvelope({{"correlation_id", "c-float"}}, float_body);
  const std::string id_a = Xadd(ch, corrupt);
  const std::string id_b = Xadd(ch, abc);
  const std::string id_c = Xadd(ch, float_env);
  // Legal payloads, not poison: JSON that is not an object, and not JSON.
  const std::string id_array = Xadd(ch, "[1,2]");
  const std::string id_text = Xadd(ch, "plain text, not JSON {");
  const absl::Time normal_at = absl::Now();
  const std::vector<std::string> normal = PublishAll(ch, {R"({"order":4})"});
  ASSERT_EQ(normal.size(), 1u);

  ASSERT_TRUE(sub->WaitForDeliveries(3, absl::Seconds(2)))
      << "the message after the poison was not delivered promptly";
  EXPECT_LE(absl::Now() - normal_at, absl::Seconds(2));
  std::vector<v1::Delivery> d = sub->deliveries();
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].payload(), "[1,2]");
  EXPECT_EQ(d[0].entry_id(), id_array);
  EXPECT_EQ(d[0].source_format(), v1::SOURCE_FORMAT_RAW);
  EXPECT_EQ(d[1].payload(), "plain text, not JSON {");
  EXPECT_EQ(d[1].entry_id(), id_text);
  EXPECT_EQ(d[2].payload(), R"({"order":4})");
  EXPECT_EQ(d[2].entry_id(), normal[0]);
  // A non-object JSON body is retried normally too (metadata in headers).
  sub->Send(NackRequest(d[0].delivery_id(), "once more"));
  sub->Ack({d[1].delivery_id(), d[2].delivery_id()});
  ASSERT_TRUE(sub->WaitForDeliveries(4));
  d = sub->deliveries();
  EXPECT_EQ(d[3].payload(), "[1,2]");
  EXPECT_EQ(d[3].attempt(), 2u);
  EXPECT_EQ(d[3].original_entry_id(), id_array);
  EXPECT_EQ(d[3].previous_error(), "once more");
  sub->Ack({d[3].delivery_id()});

  ASSERT_TRUE(WaitFor([&] {
    return XLen("poisoned.p.dlq") == 3 && Pending(ch, "p") == 0 &&
           Pending("poisoned.p.retry", "p-retry") == 0 && !Exists("poisoned.p.retry.due");
  }));
  // Window: the poison entries are never delivered.
  EXPECT_FALSE(sub->WaitForDeliveries(5, absl::Milliseconds(300)));
  EXPECT_EQ(sub->delivery_count(), 4u);

  struct Expect {
    std::string id;
    std::string raw;
    HeaderList headers;
  };
  const std::vector<Expect> expected = {
      {id_a, corrupt, {}}, {id_b, abc, {}}, {id_c, float_env, {{"correlation_id", "c-float"}}}};
  const std::vector<StreamEntry> dlq = XRange("poisoned.p.dlq");
  ASSERT_EQ(dlq.size(), 3u);
  for (size_t i = 0; i < expected.size(); ++i) {
    const Expect& x = expected[i];
    const auto it = std::find_if(dlq.begin(), dlq.end(), [&](const StreamEntry& e) {
      return FieldOr(e, "x-redrive-source-id") == x.id;
    });
    ASSERT_NE(it, dlq.end()) << "poison " << i << " (" << x.id << ") not in the DLQ";
    const StreamEntry& e = *it;
    EXPECT_THAT(FieldNames(e), UnorderedElementsAreArray(kDeadLetterFieldNames)) << i;
    EXPECT_EQ(FieldOr(e, "x-redrive-reason"), "poison") << i;
    EXPECT_EQ(FieldOr(e, "x-redrive-handler"), "p");
    EXPECT_EQ(FieldOr(e, "x-redrive-channel"), ch);
    EXPECT_EQ(FieldOr(e, "x-redrive-source-stream"), ch);
    EXPECT_EQ(FieldOr(e, "x-redrive-original-id"), x.id);
    EXPECT_EQ(FieldOr(e, "x-redrive-attempts"), "1");
    EXPECT_EQ(FieldOr(e, "x-redrive-last-error-code"), "POISON");
    EXPECT_THAT(FieldOr(e, "x-redrive-last-error"), HasSubstr("poison")) << i;
    const DecodedEntry data = Data(e);
    EXPECT_EQ(data.format, EntryFormat::kBinaryV1) << i;
    EXPECT_EQ(data.headers, x.headers) << i;
    const json body = ParseJson(data.body);
    ASSERT_TRUE(body.is_object()) << data.body;
    EXPECT_EQ(body.value("_dlq_raw_b64", ""), absl::Base64Escape(x.raw)) << i;
    EXPECT_EQ(body.value("_dlq_reason", ""), "poison");
    EXPECT_EQ(body.value("_dlq_handler", ""), "p");
    EXPECT_EQ(body.value("_dlq_source", ""), ch);
    EXPECT_EQ(body.value("_dlq_retries", ""), "0");
    EXPECT_EQ(body.value("_original_message_id", ""), x.id);
    std::string raw;
    ASSERT_TRUE(absl::Base64Unescape(body.value("_dlq_raw_b64", ""), &raw));
    EXPECT_EQ(raw, x.raw) << i;
  }
  EXPECT_THAT(Keys(),
              ElementsAre("poisoned", "poisoned.p.dlq", "poisoned.p.retry", "{redrive}:handlers"));
}

// ---------------------------------------------------------------------------
// 7. A message that kills its consumer every time (R-B7) ends in the DLQ as
// "disconnected"; the others still flow.

TEST_F(RetryTest, CrashingMessageIsDeadLetteredAsDisconnected) {
  Boot();
  const std::string ch = "crashing";
  v1::Register reg = RegisterFor(ch, "h", 1);
  SetPolicy(reg, /*max_retries=*/2, /*initial_backoff_ms=*/0, /*multiplier=*/1.0);
  std::vector<std::string> payloads;
  for (int i = 0; i < 5; ++i) payloads.push_back(absl::StrCat("ok-", i));
  payloads.push_back("crash");
  for (int i = 5; i < 10; ++i) payloads.push_back(absl::StrCat("ok-", i));
  std::vector<std::unique_ptr<TestSubscriber>> streams;
  streams.push_back(Subscribe(reg));
  const std::vector<std::string> ids = PublishAll(ch, payloads);
  ASSERT_EQ(ids.size(), payloads.size());
  const std::string crash_id = ids[5];

  size_t seen = 0;
  std::vector<v1::Delivery> crashes;
  std::vector<std::string> oks;
  const absl::Time until = absl::Now() + absl::Seconds(20);
  while (absl::Now() < until && !(oks.size() == 10 && XLen("crashing.h.dlq") == 1)) {
    TestSubscriber& s = *streams.back();
    s.WaitForDeliveries(seen + 1, absl::Milliseconds(50));
    const std::vector<v1::Delivery> all = s.deliveries();
    bool reconnect = false;
    for (; seen < all.size(); ++seen) {
      const v1::Delivery& d = all[seen];
      if (d.payload() == "crash") {
        crashes.push_back(d);
        s.Cancel();  // the consumer dies on this message
        reconnect = true;
        break;
      }
      oks.push_back(d.payload());
      s.Ack({d.delivery_id()});
    }
    if (reconnect) {
      ASSERT_TRUE(s.WaitFinished());
      ASSERT_LT(streams.size(), 10u) << "crash loop";
      streams.push_back(Subscribe(reg));
      seen = 0;
    }
  }
  ASSERT_EQ(crashes.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(crashes[i].attempt(), i + 1);
    EXPECT_EQ(crashes[i].original_entry_id(), crash_id);
    EXPECT_EQ(crashes[i].stream(), i == 0 ? ch : "crashing.h.retry");
    if (i > 0) {
      EXPECT_EQ(crashes[i].previous_error(), "consumer disconnected");
      EXPECT_EQ(crashes[i].previous_error_code(), "DISCONNECTED");
    }
  }
  std::vector<std::string> expected_oks = payloads;
  expected_oks.erase(expected_oks.begin() + 5);
  EXPECT_THAT(oks, UnorderedElementsAreArray(expected_oks));

  ASSERT_TRUE(WaitFor([&] {
    return XLen("crashing.h.dlq") == 1 && Pending(ch, "h") == 0 &&
           Pending("crashing.h.retry", "h-retry") == 0 && !Exists("crashing.h.retry.due");
  }));
  const std::vector<StreamEntry> dlq = XRange("crashing.h.dlq");
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(FieldOr(dlq[0], "x-redrive-reason"), "disconnected");
  EXPECT_EQ(FieldOr(dlq[0], "x-redrive-original-id"), crash_id);
  EXPECT_EQ(FieldOr(dlq[0], "x-redrive-attempts"), "3");
  EXPECT_EQ(FieldOr(dlq[0], "x-redrive-last-error"), "consumer disconnected");
  EXPECT_EQ(FieldOr(dlq[0], "x-redrive-last-error-code"), "DISCONNECTED");
  EXPECT_EQ(Data(dlq[0]).body, "crash");
  const json history = ParseJson(FieldOr(dlq[0], "x-redrive-history"));
  ASSERT_EQ(history.size(), 3u) << history.dump();
  for (const json& h : history) EXPECT_EQ(h.value("outcome", ""), "disconnected");
  EXPECT_EQ(XLen("crashing.h.retry"), 2);
  EXPECT_THAT(Keys(),
              ElementsAre("crashing", "crashing.h.dlq", "crashing.h.retry", "{redrive}:handlers"));
}

// ---------------------------------------------------------------------------
// 8. TERMINATE (R-B4): straight to the DLQ, no retry.

TEST_F(RetryTest, TerminateDeadLettersAtOnce) {
  Boot();
  const std::string ch = "terminal";
  v1::Register reg = RegisterFor(ch, "h", 10);
  SetPolicy(reg, /*max_retries=*/5, /*initial_backoff_ms=*/50, /*multiplier=*/1.0);
  auto sub = Subscribe(reg);
  const std::vector<std::string> ids = PublishAll(ch, {R"({"order":7})"});
  ASSERT_EQ(ids.size(), 1u);
  ASSERT_TRUE(sub->WaitForDeliveries(1));
  ASSERT_TRUE(sub->Send(
      TerminateRequest(sub->deliveries()[0].delivery_id(), "order 7 is invalid", "E_INVALID")));
  ASSERT_TRUE(WaitFor([&] { return XLen("terminal.h.dlq") == 1 && Pending(ch, "h") == 0; }));
  // Window: it is not retried.
  EXPECT_FALSE(sub->WaitForDeliveries(2, absl::Milliseconds(300)));
  const std::vector<StreamEntry> dlq = XRange("terminal.h.dlq");
  ASSERT_EQ(dlq.size(), 1u);
  const StreamEntry& e = dlq[0];
  EXPECT_THAT(FieldNames(e), UnorderedElementsAreArray(kDeadLetterFieldNames));
  EXPECT_EQ(FieldOr(e, "x-redrive-reason"), "terminated");
  EXPECT_EQ(FieldOr(e, "x-redrive-last-error"), "order 7 is invalid");
  EXPECT_EQ(FieldOr(e, "x-redrive-last-error-code"), "E_INVALID");
  EXPECT_EQ(FieldOr(e, "x-redrive-attempts"), "1");
  EXPECT_EQ(FieldOr(e, "x-redrive-original-id"), ids[0]);
  EXPECT_EQ(FieldOr(e, "x-redrive-source-stream"), ch);
  const json history = ParseJson(FieldOr(e, "x-redrive-history"));
  ASSERT_EQ(history.size(), 1u) << history.dump();
  EXPECT_EQ(history[0].value("outcome", ""), "terminated");
  const json body = ParseJson(Data(e).body);
  EXPECT_EQ(body.value("order", -1), 7);
  EXPECT_EQ(body.value("_dlq_reason", ""), "terminated");
  EXPECT_EQ(body.value("_dlq_retries", ""), "0");
  EXPECT_EQ(body.value("_original_message_id", ""), ids[0]);
  EXPECT_THAT(Keys(), ElementsAre("terminal", "terminal.h.dlq", "{redrive}:handlers"));
}

// ---------------------------------------------------------------------------
// 9. Issue 10 item 5: a rolling deploy burnt attempts. A delivery still
// unsettled when a SIGTERM's grace ends stays pending for the next owner
// (broker.proto, step 6) without counting an attempt: a message on its final
// attempt is delivered again by the next daemon, with the same attempt
// number, and never reaches the DLQ.

TEST_F(RetryTest, SigtermKeepsTheFinalAttemptForTheNextDaemonWithoutCountingIt) {
  Boot("r1", {"--shutdown-grace-ms=300"});
  const std::string ch = "deploy";
  v1::Register reg = RegisterFor(ch, "h", 1);
  SetPolicy(reg, /*max_retries=*/1, /*initial_backoff_ms=*/0, /*multiplier=*/1.0);
  auto sub = Subscribe(reg);
  const std::vector<std::string> ids = PublishAll(ch, {R"({"order":42})"});
  ASSERT_EQ(ids.size(), 1u);
  ASSERT_TRUE(sub->WaitForDeliveries(1));
  ASSERT_TRUE(sub->Send(NackRequest(sub->deliveries()[0].delivery_id(), "db timeout", "E_DB", 0)));
  // Attempt 2 of 2: the final one. The client holds it through the grace.
  ASSERT_TRUE(sub->WaitForDeliveries(2));
  const v1::Delivery last = sub->deliveries()[1];
  ASSERT_EQ(last.attempt(), 2u);
  ASSERT_EQ(last.max_attempts(), 2u);
  ASSERT_EQ(last.stream(), "deploy.h.retry");

  const int status = daemon_->Terminate();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ASSERT_TRUE(sub->WaitFinished());
  EXPECT_TRUE(sub->drained());
  EXPECT_EQ(sub->status().error_code(), grpc::StatusCode::UNAVAILABLE);
  // Not dead-lettered: still pending in the handler's retry group.
  EXPECT_FALSE(Exists("deploy.h.dlq"));
  EXPECT_EQ(Pending("deploy.h.retry", "h-retry"), 1);

  auto next = StartDaemon("r2");
  ASSERT_NE(next, nullptr);
  auto next_client = Client::Connect(next->address());
  ASSERT_TRUE(next_client->WaitForConnected(absl::Seconds(10)));
  auto taker = Subscribe(reg, next_client.get());
  ASSERT_TRUE(taker->WaitForDeliveries(1));
  const v1::Delivery again = taker->deliveries()[0];
  EXPECT_EQ(again.payload(), R"({"order":42})");
  EXPECT_EQ(again.attempt(), 2u);
  EXPECT_EQ(again.max_attempts(), 2u);
  EXPECT_EQ(again.original_entry_id(), ids[0]);
  EXPECT_EQ(again.stream(), "deploy.h.retry");
  // The previous error is still the NACK's: the shutdown recorded nothing.
  EXPECT_EQ(again.previous_error(), "db timeout");
  EXPECT_EQ(again.previous_error_code(), "E_DB");
  // The entry delivered carries one failure (the NACK) in its history (read
  // while it is pending: acknowledged retry entries may be trimmed).
  const std::vector<StreamEntry> retries = XRange("deploy.h.retry");
  ASSERT_FALSE(retries.empty());
  const StreamEntry& delivered = retries.back();
  EXPECT_EQ(delivered.id, again.entry_id());
  const json history = ParseJson(FieldOr(delivered, "x-redrive-history"));
  ASSERT_EQ(history.size(), 1u) << history.dump();
  EXPECT_EQ(history[0].value("outcome", ""), "nack");
  ASSERT_TRUE(taker->Ack({again.delivery_id()}));
  ASSERT_TRUE(WaitFor([&] {
    return Pending("deploy.h.retry", "h-retry") == 0 && Pending(ch, "h") == 0 &&
           !Exists("deploy.h.retry.due");
  }));
  // Window: nothing else arrives (no duplicate of the handed-back entry).
  EXPECT_FALSE(taker->WaitForDeliveries(2, absl::Milliseconds(300)));
  EXPECT_FALSE(Exists("deploy.h.dlq"));
  EXPECT_THAT(Keys(), ElementsAre("deploy", "deploy.h.retry", "{redrive}:handlers"));
}

// ---------------------------------------------------------------------------
// 10. Issue 10 item 10: retry streams grew for ever. Entries every group has
// acknowledged are trimmed (here with no retention, a sweep a second); an
// entry still pending is never trimmed.

TEST_F(RetryTest, AcknowledgedRetryEntriesAreTrimmedAndPendingOnesStay) {
  Boot("r1", {"--retry-retention-ms=0", "--sweep-interval-ms=100"});
  const std::string ch = "trimmed";
  const std::string retry = "trimmed.h.retry";
  constexpr int kMessages = 10000;
  v1::Register reg = RegisterFor(ch, "h", 1000);
  reg.set_lease_ms(1000);  // sweep period max(lease, 100 ms) = 1 s
  SetPolicy(reg, /*max_retries=*/3, /*initial_backoff_ms=*/0, /*multiplier=*/1.0);
  auto sub = Subscribe(reg);
  std::vector<std::string> payloads;
  for (int i = 0; i < kMessages; ++i) payloads.push_back(absl::StrCat("m-", i));
  std::vector<std::string> ids;
  for (int first = 0; first < kMessages; first += 1000) {
    const std::vector<std::string> batch = PublishAll(
        ch, std::vector<std::string>(payloads.begin() + first, payloads.begin() + first + 1000));
    ids.insert(ids.end(), batch.begin(), batch.end());
  }
  ASSERT_EQ(ids.size(), static_cast<size_t>(kMessages));

  // Every first attempt is NACKed; every retry ACKed, except the last one
  // to arrive, held (extended) to the end. Retries are read in retry-stream
  // order, so it is the newest retry entry: MINID can trim exactly the
  // entries before it.
  std::map<std::string, std::vector<uint32_t>> attempts;  // payload -> attempts seen
  std::optional<v1::Delivery> held;
  size_t seen = 0;
  int retries = 0;
  const absl::Time until = absl::Now() + absl::Seconds(120);
  while (seen < 2u * kMessages && absl::Now() < until) {
    sub->WaitForDeliveries(seen + 1, absl::Milliseconds(100));
    const std::vector<v1::Delivery> all = sub->deliveries();
    v1::SubscribeRequest verbs;
    for (; seen < all.size(); ++seen) {
      const v1::Delivery& d = all[seen];
      attempts[d.payload()].push_back(d.attempt());
      v1::Verb* v = verbs.mutable_verbs()->add_verbs();
      v->set_delivery_id(d.delivery_id());
      if (d.attempt() == 1) {
        v->mutable_nack()->set_reason("first try fails");
        v->mutable_nack()->set_delay_ms(0);
      } else if (++retries == kMessages) {
        held = d;
        v->mutable_extend()->set_lease_ms(600000);
      } else {
        v->mutable_ack();
      }
    }
    if (verbs.verbs().verbs_size() > 0) {
      ASSERT_TRUE(sub->Send(verbs));
    }
  }
  ASSERT_EQ(seen, 2u * kMessages);
  ASSERT_EQ(attempts.size(), static_cast<size_t>(kMessages));
  for (const auto& [payload, a] : attempts) {
    ASSERT_THAT(a, ElementsAre(1u, 2u)) << payload;
  }
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->stream(), retry);

  // Everything but the held entry is settled: the retry stream, which
  // received 10,000 entries, keeps exactly the held one and what came after
  // it (nothing, unless a redelivery reordered the arrivals), the held one's
  // bytes intact: a pending entry is never trimmed.
  auto id_key = [](const std::string& id) {
    uint64_t ms = 0, seq = 0;
    const size_t dash = id.find('-');
    EXPECT_TRUE(absl::SimpleAtoi(id.substr(0, dash), &ms) &&
                absl::SimpleAtoi(id.substr(dash + 1), &seq))
        << id;
    return std::make_pair(ms, seq);
  };
  int64_t after_held = 0;
  for (const v1::Delivery& d : sub->deliveries()) {
    if (d.attempt() == 2 && id_key(d.entry_id()) > id_key(held->entry_id())) ++after_held;
  }
  ASSERT_TRUE(WaitFor([&] { return Pending(retry, "h-retry") == 1 && Pending(ch, "h") == 0; },
                      absl::Seconds(30)));
  ASSERT_TRUE(WaitFor([&] { return XLen(retry) == 1 + after_held; }, absl::Seconds(30)))
      << "XLEN " << XLen(retry) << ", entries after the held one " << after_held;
  std::vector<StreamEntry> left = XRange(retry);
  ASSERT_EQ(left.size(), static_cast<size_t>(1 + after_held));
  EXPECT_EQ(left[0].id, held->entry_id());
  const DecodedEntry kept = Data(left[0]);
  EXPECT_EQ(kept.body, held->payload());
  EXPECT_EQ(HeaderOr(kept.headers, "x-redrive-original-id"), held->original_entry_id());
  // The main stream is the channel's, never trimmed; nothing dead-lettered.
  EXPECT_EQ(XLen(ch), kMessages);
  EXPECT_FALSE(Exists("trimmed.h.dlq"));
  // Settled at last, it goes too.
  ASSERT_TRUE(sub->Ack({held->delivery_id()}));
  ASSERT_TRUE(WaitFor([&] { return XLen(retry) == 0; }, absl::Seconds(30)))
      << "XLEN " << XLen(retry);
  EXPECT_THAT(Keys(), ElementsAre("trimmed", "trimmed.h.retry", "{redrive}:handlers"));
}

}  // namespace
}  // namespace redrive
