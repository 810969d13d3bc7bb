// End to end: Subscribe through the real redrived binary and a real
// redis-server, from C++ (R-B1..R-B10, R-C1, R-C3).
#include <gmock/gmock.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "absl/strings/str_cat.h"
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

using ::redrive::testing::DaemonProcess;
using ::redrive::testing::IsOk;
using ::redrive::testing::PendingCount;
using ::redrive::testing::SortedKeys;
using ::redrive::testing::SpecEnvelope;
using ::redrive::testing::TestRedisServer;
using ::redrive::testing::TestSubscriber;
using ::redrive::testing::WaitFor;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

using ::redrive::testing::RegisterFor;

// Opens Subscribe as a generic (untyped) call, sends `messages` as the
// client's messages (raw bytes each; after each but the last it waits for one
// message from the daemon) and reads until the daemon ends the call; its
// status, and in `responses` how many messages the daemon sent.
grpc::Status RawSubscribe(const std::shared_ptr<grpc::Channel>& channel,
                          const std::vector<std::string>& messages, int* responses) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      stub.PrepareCall(&ctx, "/redrive.v1.Broker/Subscribe", &cq);
  auto await = [&cq](intptr_t want) {
    void* tag = nullptr;
    bool ok = false;
    if (!cq.Next(&tag, &ok)) return false;
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  EXPECT_TRUE(await(1));
  grpc::ByteBuffer response;
  *responses = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    grpc::Slice slice(messages[i]);
    grpc::ByteBuffer request(&slice, 1);
    call->Write(request, reinterpret_cast<void*>(2));
    if (!await(2)) break;  // the daemon already ended the call
    if (i + 1 < messages.size()) {
      call->Read(&response, reinterpret_cast<void*>(3));
      if (!await(3)) break;
      ++*responses;
    }
  }
  while (true) {
    call->Read(&response, reinterpret_cast<void*>(3));
    if (!await(3)) break;
    ++*responses;
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  EXPECT_TRUE(await(4));
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

class SubscribeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = TestRedisServer::Start();
    ASSERT_NE(redis_, nullptr);
    conn_ = redis_->Connect();
    daemon_ = StartDaemon("a");
    ASSERT_NE(daemon_, nullptr);
    client_ = Client::Connect(daemon_->address());
    ASSERT_TRUE(client_->WaitForConnected(absl::Seconds(10)));
  }

  std::unique_ptr<DaemonProcess> StartDaemon(const std::string& instance,
                                             std::vector<std::string> extra = {}) {
    DaemonProcess::Options o;
    o.redis_url = redis_->url();
    o.extra_args = std::move(extra);
    o.extra_args.push_back("--instance-id=" + instance);
    return DaemonProcess::Start(o);
  }

  std::unique_ptr<TestSubscriber> Subscribe(const v1::Register& reg, Client* client = nullptr) {
    auto sub = std::make_unique<TestSubscriber>((client ? client : client_.get())->broker(), reg);
    EXPECT_TRUE(sub->WaitRegistered()) << sub->status().error_message();
    return sub;
  }

  std::vector<std::string> PublishN(const std::string& channel, int n,
                                    const std::string& prefix = "m") {
    std::vector<std::string> payloads;
    v1::PublishBatchRequest b;
    b.set_channel(channel);
    for (int i = 0; i < n; ++i) {
      payloads.push_back(absl::StrCat(prefix, "-", i));
      b.add_messages()->set_payload(payloads.back());
    }
    EXPECT_THAT(client_->PublishBatch(b), IsOk());
    return payloads;
  }

  std::vector<std::string> Keys() { return SortedKeys(*conn_); }

  int64_t Pending(const std::string& stream, const std::string& group) {
    return PendingCount(*conn_, stream, group);
  }

  std::unique_ptr<TestRedisServer> redis_;
  std::unique_ptr<RedisConnection> conn_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<Client> client_;
};

TEST_F(SubscribeTest, RegisteredReplyCarriesEffectiveSettingsAndExactNames) {
  v1::Register reg = RegisterFor("eggai.orders", "order-service-handle_order-1", 7);
  reg.mutable_retry_policy()->set_max_retries(2);
  auto sub = Subscribe(reg);
  const v1::Registered& r = sub->registered();
  EXPECT_EQ(r.channel(), "eggai.orders");
  EXPECT_EQ(r.handler_id(), "order-service-handle_order-1");
  EXPECT_EQ(r.max_in_flight(), 7u);
  EXPECT_EQ(r.lease_ms(), 30000u);
  EXPECT_EQ(r.retry_policy().max_retries(), 2u);
  EXPECT_EQ(r.retry_policy().initial_backoff_ms(), 1000u);
  EXPECT_EQ(r.start().kind(), v1::StartPosition::START_NEW);
  EXPECT_EQ(r.instance_id(), "a");
  EXPECT_EQ(r.names().stream(), "eggai.orders");
  EXPECT_EQ(r.names().group(), "order-service-handle_order-1");
  EXPECT_EQ(r.names().retry_stream(), "eggai.orders.order-service-handle_order-1.retry");
  EXPECT_EQ(r.names().retry_group(), "order-service-handle_order-1-retry");
  EXPECT_EQ(r.names().dlq_stream(), "eggai.orders.order-service-handle_order-1.dlq");
  EXPECT_EQ(r.names().consumer(), "order-service-handle_order-1-a");
  // Only the main stream exists (created with the group); retry and DLQ
  // streams appear when something is retried or dead-lettered.
  EXPECT_THAT(Keys(), ElementsAre("eggai.orders", "{redrive}:handlers"));
}

TEST_F(SubscribeTest, TwoHandlerIdsEachReceiveEveryMessageExactlyOnce) {
  auto a = Subscribe(RegisterFor("orders", "handler-a"));
  auto b = Subscribe(RegisterFor("orders", "handler-b"));
  const std::vector<std::string> published = PublishN("orders", 50);
  ASSERT_TRUE(a->WaitForDeliveries(50));
  ASSERT_TRUE(b->WaitForDeliveries(50));
  a->AckAll();
  b->AckAll();
  // First attempts arrive in stream order on one stream (R-B10).
  EXPECT_THAT(a->payloads(), ElementsAreArray(published));
  EXPECT_THAT(b->payloads(), ElementsAreArray(published));
  ASSERT_TRUE(WaitFor([&] { return Pending("orders", "handler-a") == 0; }));
  ASSERT_TRUE(WaitFor([&] { return Pending("orders", "handler-b") == 0; }));
  EXPECT_EQ(a->delivery_count(), 50u);
  EXPECT_EQ(b->delivery_count(), 50u);
  EXPECT_THAT(Keys(), ElementsAre("orders", "{redrive}:handlers"));
}

TEST_F(SubscribeTest, TwoStreamsOfOneHandlerShareTheWork) {
  auto s1 = Subscribe(RegisterFor("orders", "workers", 5));
  auto s2 = Subscribe(RegisterFor("orders", "workers", 5));
  const std::vector<std::string> published = PublishN("orders", 200);
  std::vector<std::string> received;
  ASSERT_TRUE(WaitFor([&] {
    s1->AckAll();
    s2->AckAll();
    return s1->delivery_count() + s2->delivery_count() >= 200;
  }));
  for (auto* s : {s1.get(), s2.get()}) {
    for (const std::string& p : s->payloads()) received.push_back(p);
  }
  EXPECT_THAT(received, UnorderedElementsAreArray(published));
  EXPECT_GT(s1->delivery_count(), 0u);
  EXPECT_GT(s2->delivery_count(), 0u);
  s1->AckAll();
  s2->AckAll();
  ASSERT_TRUE(WaitFor([&] { return Pending("orders", "workers") == 0; }));
}

TEST_F(SubscribeTest, TwoDaemonsOnOneRedisShareOneGroup) {
  auto other = StartDaemon("b");
  ASSERT_NE(other, nullptr);
  auto other_client = Client::Connect(other->address());
  auto s1 = Subscribe(RegisterFor("orders", "workers", 8));
  auto s2 = Subscribe(RegisterFor("orders", "workers", 8), other_client.get());
  EXPECT_EQ(s1->registered().names().consumer(), "workers-a");
  EXPECT_EQ(s2->registered().names().consumer(), "workers-b");
  const std::vector<std::string> published = PublishN("orders", 300);
  ASSERT_TRUE(WaitFor([&] {
    s1->AckAll();
    s2->AckAll();
    return s1->delivery_count() + s2->delivery_count() >= 300;
  }));
  std::vector<std::string> received = s1->payloads();
  for (const std::string& p : s2->payloads()) received.push_back(p);
  EXPECT_THAT(received, UnorderedElementsAreArray(published));
  EXPECT_GT(s1->delivery_count(), 0u);
  EXPECT_GT(s2->delivery_count(), 0u);
  ASSERT_TRUE(WaitFor([&] {
    s1->AckAll();
    s2->AckAll();
    return Pending("orders", "workers") == 0;
  }));
  EXPECT_EQ(s1->delivery_count() + s2->delivery_count(), 300u);
  for (auto* s : {s1.get(), s2.get()}) {
    std::set<std::string> seen;
    for (const v1::Delivery& d : s->deliveries()) {
      EXPECT_TRUE(seen.insert(d.payload()).second)
          << "duplicate " << d.payload() << " attempt " << d.attempt() << " id " << d.delivery_id();
    }
  }
}

TEST_F(SubscribeTest, MaxInFlightThreeWithoutAcksHoldsExactlyThree) {
  auto sub = Subscribe(RegisterFor("orders", "slow", 3));
  PublishN("orders", 20);
  ASSERT_TRUE(sub->WaitForDeliveries(3));
  // A fourth delivery must not come, however long we look; the group has
  // read no more than it could deliver (R-B5).
  EXPECT_FALSE(sub->WaitForDeliveries(4, absl::Milliseconds(500)));
  EXPECT_EQ(sub->delivery_count(), 3u);
  EXPECT_EQ(Pending("orders", "slow"), 3);
  // Acking one frees exactly one slot.
  sub->Ack({sub->deliveries()[0].delivery_id()});
  ASSERT_TRUE(sub->WaitForDeliveries(4));
  EXPECT_FALSE(sub->WaitForDeliveries(5, absl::Milliseconds(300)));
  EXPECT_EQ(sub->delivery_count(), 4u);
  EXPECT_EQ(sub->payloads()[3], "m-3");
}

TEST_F(SubscribeTest, DisconnectMovesUnackedDeliveriesToTheOtherStream) {
  v1::Register holder_reg = RegisterFor("orders", "workers", 10);
  auto holder = Subscribe(holder_reg);
  const std::vector<std::string> published = PublishN("orders", 10);
  ASSERT_TRUE(holder->WaitForDeliveries(10));
  auto other = Subscribe(RegisterFor("orders", "workers", 20));
  EXPECT_FALSE(other->WaitForDeliveries(1, absl::Milliseconds(200)));
  holder->Cancel();  // a crashed client holding 10 unacked deliveries
  ASSERT_TRUE(other->WaitForDeliveries(10));
  EXPECT_THAT(other->payloads(), UnorderedElementsAreArray(published));
  // Each is a retry (R-B7: a failed attempt), from the handler's retry
  // stream, naming the main-stream entry it came from.
  std::vector<std::string> first_ids;
  for (const v1::Delivery& d : holder->deliveries()) first_ids.push_back(d.entry_id());
  std::vector<std::string> originals;
  for (const v1::Delivery& d : other->deliveries()) {
    EXPECT_EQ(d.attempt(), 2u) << d.payload();
    EXPECT_EQ(d.stream(), "orders.workers.retry");
    EXPECT_EQ(d.previous_error(), "consumer disconnected");
    EXPECT_EQ(d.previous_error_code(), "DISCONNECTED");
    originals.push_back(d.original_entry_id());
  }
  EXPECT_THAT(originals, UnorderedElementsAreArray(first_ids));
  other->AckAll();
  ASSERT_TRUE(WaitFor([&] {
    return Pending("orders", "workers") == 0 &&
           Pending("orders.workers.retry", "workers-retry") == 0;
  }));
  EXPECT_EQ(other->delivery_count(), 10u);
}

TEST_F(SubscribeTest, VerbNoticesAndIdempotentAck) {
  auto sub = Subscribe(RegisterFor("orders", "h"));
  PublishN("orders", 1);
  ASSERT_TRUE(sub->WaitForDeliveries(1));
  const uint64_t id = sub->deliveries()[0].delivery_id();
  sub->Ack({id});
  sub->Ack({id});  // idempotent: no notice
  v1::SubscribeRequest nack;
  v1::Verb* v = nack.mutable_verbs()->add_verbs();
  v->set_delivery_id(id);
  v->mutable_nack()->set_reason("late");
  sub->Send(nack);
  sub->Ack({id + 1000});
  ASSERT_TRUE(WaitFor([&] { return sub->notices().size() >= 2; }));
  std::vector<v1::Notice> notices = sub->notices();
  ASSERT_EQ(notices.size(), 2u);
  EXPECT_EQ(notices[0].delivery_id(), id);
  EXPECT_EQ(notices[0].code(), v1::Notice::ALREADY_SETTLED);
  EXPECT_EQ(notices[1].delivery_id(), id + 1000);
  EXPECT_EQ(notices[1].code(), v1::Notice::UNKNOWN_DELIVERY);
  ASSERT_TRUE(WaitFor([&] { return Pending("orders", "h") == 0; }));
}

TEST_F(SubscribeTest, BacklogStartReallyDeliversTheBacklog) {
  const std::vector<std::string> published = PublishN("orders", 25, "old");
  v1::Register reg = RegisterFor("orders", "late-joiner");
  reg.mutable_start()->set_kind(v1::StartPosition::START_BACKLOG);
  auto sub = Subscribe(reg);
  ASSERT_TRUE(sub->WaitForDeliveries(25));
  EXPECT_THAT(sub->payloads(), ElementsAreArray(published));
  // A START_NEW group on the same channel sees none of it.
  auto fresh = Subscribe(RegisterFor("orders", "new-only"));
  EXPECT_FALSE(fresh->WaitForDeliveries(1, absl::Milliseconds(300)));
}

TEST_F(SubscribeTest, StartAtIdDeliversEntriesAfterIt) {
  v1::PublishBatchRequest b;
  b.set_channel("orders");
  for (const char* p : {"a", "b", "c"}) b.add_messages()->set_payload(p);
  absl::StatusOr<v1::PublishBatchResponse> ids = client_->PublishBatch(b);
  ASSERT_THAT(ids, IsOk());
  v1::Register reg = RegisterFor("orders", "from-a");
  reg.mutable_start()->set_kind(v1::StartPosition::START_AT_ID);
  reg.mutable_start()->set_entry_id(ids->entry_ids(0));
  auto sub = Subscribe(reg);
  ASSERT_TRUE(sub->WaitForDeliveries(2));
  EXPECT_THAT(sub->payloads(), ElementsAre("b", "c"));
}

TEST_F(SubscribeTest, EggAIWrittenEntriesAreDeliveredWithPayloadAndHeaders) {
  auto sub = Subscribe(RegisterFor("eggai.orders", "py-compat"));
  // Exactly what FastStream 0.7 / EggAI 0.3.4 write: a CloudEvent body.
  const std::string body =
      R"({"specversion":"1.0","id":"e1","source":"orders-agent","type":"order.created",)"
      R"("traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","data":{"n":1}})";
  const std::string data = SpecEnvelope({{"correlation_id", "0b9e1c46-1111-4f2e-9b1e-3e2f7a0c9d10"},
                                         {"content-type", "application/json"}},
                                        body);
  ASSERT_THAT(conn_->Command({"XADD", "eggai.orders", "*", "__data__", data}), IsOk());
  // Another producer's plain field map.
  ASSERT_THAT(conn_->Command({"XADD", "eggai.orders", "*", "order", "42", "status", "new"}),
              IsOk());
  ASSERT_TRUE(sub->WaitForDeliveries(2));
  const std::vector<v1::Delivery> d = sub->deliveries();
  EXPECT_EQ(d[0].payload(), body);
  EXPECT_EQ(d[0].content_type(), "application/json");
  EXPECT_EQ(d[0].correlation_id(), "0b9e1c46-1111-4f2e-9b1e-3e2f7a0c9d10");
  EXPECT_EQ(d[0].headers_size(), 0);
  EXPECT_EQ(d[0].source_format(), v1::SOURCE_FORMAT_BINARY_V1);
  EXPECT_EQ(d[0].trace().traceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(d[0].attempt(), 1u);
  EXPECT_EQ(d[0].max_attempts(), 6u);
  EXPECT_EQ(d[0].channel(), "eggai.orders");
  EXPECT_EQ(d[0].stream(), "eggai.orders");
  EXPECT_GT(d[0].lease_deadline_unix_ms(), absl::ToUnixMillis(absl::Now()));
  EXPECT_EQ(d[1].source_format(), v1::SOURCE_FORMAT_FIELDS);
  EXPECT_EQ(d[1].payload(), R"({"order":"42","status":"new"})");
  ASSERT_EQ(d[1].fields_size(), 2);
  EXPECT_EQ(d[1].fields(0).name(), "order");
  EXPECT_EQ(d[1].fields(0).value(), "42");
  EXPECT_EQ(d[1].fields(1).name(), "status");
  EXPECT_EQ(d[1].fields(1).value(), "new");
}

TEST_F(SubscribeTest, PublishedHeadersAndTraceReachTheSubscriber) {
  auto sub = Subscribe(RegisterFor("orders", "h"));
  v1::PublishRequest r;
  r.set_channel("orders");
  r.mutable_message()->set_payload("p\xc3\xa9");
  r.mutable_message()->set_content_type("text/plain");
  r.mutable_message()->set_correlation_id("c-9");
  auto* h = r.mutable_message()->add_headers();
  h->set_key("tenant");
  h->set_value("z\xc3\xbcrich");
  r.mutable_message()->mutable_trace()->set_traceparent(
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  r.mutable_message()->mutable_trace()->set_tracestate("vendor=1");
  absl::StatusOr<v1::PublishResponse> published = client_->Publish(r);
  ASSERT_THAT(published, IsOk());
  ASSERT_TRUE(sub->WaitForDeliveries(1));
  const v1::Delivery d = sub->deliveries()[0];
  EXPECT_EQ(d.entry_id(), published->entry_id());
  EXPECT_EQ(d.payload(), "p\xc3\xa9");
  EXPECT_EQ(d.content_type(), "text/plain");
  EXPECT_EQ(d.correlation_id(), "c-9");
  ASSERT_EQ(d.headers_size(), 1);
  EXPECT_EQ(d.headers(0).key(), "tenant");
  EXPECT_EQ(d.headers(0).value(), "z\xc3\xbcrich");
  EXPECT_EQ(d.trace().traceparent(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_EQ(d.trace().tracestate(), "vendor=1");
}

TEST_F(SubscribeTest, AutoAckLeavesNothingPending) {
  v1::Register reg = RegisterFor("orders", "fire-and-forget", 100);
  reg.set_auto_ack(true);
  auto sub = Subscribe(reg);
  EXPECT_FALSE(sub->registered().has_retry_policy());
  const std::vector<std::string> published = PublishN("orders", 30);
  ASSERT_TRUE(sub->WaitForDeliveries(30));
  EXPECT_THAT(sub->payloads(), ElementsAreArray(published));
  EXPECT_EQ(Pending("orders", "fire-and-forget"), 0);
}

TEST_F(SubscribeTest, RegistrationErrorsHaveExactStatusAndDaemonKeepsServing) {
  struct Case {
    std::string name;
    std::function<void(v1::SubscribeRequest&)> edit;
    grpc::StatusCode code;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"missing handler id",
       [](v1::SubscribeRequest& r) { r.mutable_register_()->clear_handler_id(); },
       grpc::StatusCode::INVALID_ARGUMENT, "register.handler_id is required"},
      {"bad channel", [](v1::SubscribeRequest& r) { r.mutable_register_()->set_channel("a b"); },
       grpc::StatusCode::INVALID_ARGUMENT, "register.channel"},
      {"max in flight",
       [](v1::SubscribeRequest& r) { r.mutable_register_()->set_max_in_flight(10001); },
       grpc::StatusCode::INVALID_ARGUMENT, "register.max_in_flight"},
      {"lease", [](v1::SubscribeRequest& r) { r.mutable_register_()->set_lease_ms(10); },
       grpc::StatusCode::INVALID_ARGUMENT, "register.lease_ms"},
      {"auto ack with retry",
       [](v1::SubscribeRequest& r) {
         r.mutable_register_()->set_auto_ack(true);
         r.mutable_register_()->mutable_retry_policy()->set_max_retries(3);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "register.auto_ack"},
      {"bad start id",
       [](v1::SubscribeRequest& r) {
         r.mutable_register_()->mutable_start()->set_kind(v1::StartPosition::START_AT_ID);
         r.mutable_register_()->mutable_start()->set_entry_id("yesterday");
       },
       grpc::StatusCode::INVALID_ARGUMENT, "register.start.entry_id"},
      {"verb first",
       [](v1::SubscribeRequest& r) {
         r.Clear();
         r.mutable_verbs()->add_verbs()->set_delivery_id(1);
       },
       grpc::StatusCode::FAILED_PRECONDITION, "first message"},
      {"empty message", [](v1::SubscribeRequest& r) { r.Clear(); },
       grpc::StatusCode::INVALID_ARGUMENT, "no register"},
  };
  for (const Case& c : cases) {
    grpc::ClientContext ctx;
    auto stream = client_->broker().Subscribe(&ctx);
    v1::SubscribeRequest req;
    *req.mutable_register_() = RegisterFor("orders", "h");
    c.edit(req);
    stream->Write(req);
    v1::SubscribeResponse ignored;
    while (stream->Read(&ignored)) {
    }
    grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), c.code) << c.name << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.needle)) << c.name;
  }
  // A second registration on one stream.
  {
    grpc::ClientContext ctx;
    auto stream = client_->broker().Subscribe(&ctx);
    v1::SubscribeRequest req;
    *req.mutable_register_() = RegisterFor("orders", "h");
    stream->Write(req);
    v1::SubscribeResponse first;
    ASSERT_TRUE(stream->Read(&first));
    EXPECT_TRUE(first.has_registered());
    stream->Write(req);
    v1::SubscribeResponse ignored;
    while (stream->Read(&ignored)) {
    }
    grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  // A key of another type under the channel name.
  ASSERT_THAT(conn_->Command({"SET", "not-a-stream", "x"}), IsOk());
  TestSubscriber wrong(client_->broker(), RegisterFor("not-a-stream", "h"));
  ASSERT_TRUE(wrong.WaitFinished());
  EXPECT_EQ(wrong.status().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // Registrations of one handler must agree on auto_ack.
  auto normal = Subscribe(RegisterFor("orders", "mixed"));
  v1::Register auto_reg = RegisterFor("orders", "mixed");
  auto_reg.set_auto_ack(true);
  TestSubscriber conflicting(client_->broker(), auto_reg);
  ASSERT_TRUE(conflicting.WaitFinished());
  EXPECT_EQ(conflicting.status().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // The daemon is still serving, and nothing stray was created.
  auto ok = Subscribe(RegisterFor("orders", "after-errors"));
  PublishN("orders", 1);
  ASSERT_TRUE(ok->WaitForDeliveries(1));
  EXPECT_THAT(Keys(), ElementsAre("not-a-stream", "orders", "{redrive}:handlers"));
}

TEST_F(SubscribeTest, TooManyVerbsInOneMessageIsInvalidArgument) {
  auto sub = Subscribe(RegisterFor("orders", "h"));
  std::vector<uint64_t> ids(10001);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = i + 1;
  sub->Ack(ids);
  ASSERT_TRUE(sub->WaitFinished());
  EXPECT_EQ(sub->status().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SubscribeTest, SigtermDrainsClientsAndLeavesUnsettledPending) {
  auto sub = Subscribe(RegisterFor("orders", "h", 5));
  PublishN("orders", 5);
  ASSERT_TRUE(sub->WaitForDeliveries(5));
  // Settle two; keep three.
  std::vector<v1::Delivery> d = sub->deliveries();
  sub->Ack({d[0].delivery_id(), d[1].delivery_id()});
  ASSERT_TRUE(WaitFor([&] { return Pending("orders", "h") == 3; }));
  const int status = daemon_->Terminate();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ASSERT_TRUE(sub->WaitFinished());
  EXPECT_TRUE(sub->drained());
  EXPECT_EQ(sub->status().error_code(), grpc::StatusCode::UNAVAILABLE);
  // Nothing lost: the three unsettled entries are pending for the next owner.
  EXPECT_EQ(Pending("orders", "h"), 3);
  auto next = StartDaemon("b");
  ASSERT_NE(next, nullptr);
  auto next_client = Client::Connect(next->address());
  auto taker = Subscribe(RegisterFor("orders", "h"), next_client.get());
  ASSERT_TRUE(taker->WaitForDeliveries(3));
  EXPECT_THAT(taker->payloads(),
              UnorderedElementsAreArray({d[2].payload(), d[3].payload(), d[4].payload()}));
}

TEST_F(SubscribeTest, LeaseExpiryRedeliversAndExtendPreventsIt) {
  v1::Register reg = RegisterFor("orders", "h", 10);
  reg.set_lease_ms(1000);
  auto sub = Subscribe(reg);
  PublishN("orders", 2);
  ASSERT_TRUE(sub->WaitForDeliveries(2));
  std::vector<v1::Delivery> d = sub->deliveries();
  // Keep extending the second one; let the first one's lease lapse.
  const absl::Time until = absl::Now() + absl::Seconds(8);
  while (absl::Now() < until && sub->delivery_count() < 3) {
    v1::SubscribeRequest extend;
    v1::Verb* v = extend.mutable_verbs()->add_verbs();
    v->set_delivery_id(d[1].delivery_id());
    v->mutable_extend();
    sub->Send(extend);
    sub->WaitForDeliveries(3, absl::Milliseconds(200));
  }
  ASSERT_GE(sub->delivery_count(), 3u);
  std::vector<v1::Delivery> all = sub->deliveries();
  EXPECT_EQ(all[2].payload(), d[0].payload());
  EXPECT_EQ(all[2].original_entry_id(), d[0].entry_id());
  EXPECT_EQ(all[2].stream(), "orders.h.retry");
  EXPECT_EQ(all[2].attempt(), 2u);
  EXPECT_EQ(all[2].previous_error_code(), "LEASE_EXPIRED");
  // The extended one was not redelivered.
  for (size_t i = 2; i < all.size(); ++i) EXPECT_NE(all[i].original_entry_id(), d[1].entry_id());
}

// Issue 10 item 6: bytes that do not parse as a SubscribeRequest ended the
// stream with OK and no reply; broker.proto promises INVALID_ARGUMENT.
TEST_F(SubscribeTest, GarbageFirstMessageIsInvalidArgumentAndDaemonKeepsServing) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      // Field 1 (register), length 5, but one byte follows.
      {"truncated", std::string("\x0a\x05\x0a", 3)},
      // A tag with wire type 7 (there is none).
      {"bad wire type", std::string("\x0f\x01", 2)},
      // register { channel: "\xff" }: proto3 strings must be UTF-8.
      {"invalid utf-8", std::string("\x0a\x03\x0a\x01\xff", 5)},
  };
  const std::string kMessage = "the client message does not parse as a redrive.v1.SubscribeRequest";
  for (const auto& [name, bytes] : cases) {
    int responses = -1;
    const grpc::Status status = RawSubscribe(client_->channel(), {bytes}, &responses);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << name << ": " << status.error_message();
    EXPECT_EQ(status.error_message(), kMessage) << name;
    EXPECT_EQ(responses, 0) << name;
  }
  // Garbage after a good registration: Registered, then INVALID_ARGUMENT.
  {
    v1::SubscribeRequest reg;
    *reg.mutable_register_() = RegisterFor("orders", "h");
    int responses = -1;
    const grpc::Status status = RawSubscribe(
        client_->channel(), {reg.SerializeAsString(), std::string("\x0f\x01", 2)}, &responses);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_EQ(status.error_message(), kMessage);
    EXPECT_EQ(responses, 1);
  }
  // The daemon is still serving Subscribe, and nothing stray was created.
  auto ok = Subscribe(RegisterFor("orders", "after-garbage"));
  const std::vector<std::string> published = PublishN("orders", 2);
  ASSERT_TRUE(ok->WaitForDeliveries(2));
  EXPECT_THAT(ok->payloads(), ElementsAreArray(published));
  EXPECT_THAT(Keys(), ElementsAre("orders", "{redrive}:handlers"));
}

// Issue 10 item 8: consumer_label was validated and then ignored.
TEST_F(SubscribeTest, ConsumerLabelAppearsInTheConsumerNameAndTheReply) {
  v1::Register reg = RegisterFor("orders", "h", 5);
  reg.set_consumer_label("web-7f9c");
  auto sub = Subscribe(reg);
  EXPECT_EQ(sub->registered().names().consumer(), "h-web-7f9c-a");
  EXPECT_EQ(sub->registered().instance_id(), "a");
  const std::vector<std::string> published = PublishN("orders", 3);
  ASSERT_TRUE(sub->WaitForDeliveries(3));
  // The consumer Redis knows is exactly that one, holding the three entries.
  absl::StatusOr<RedisReply> consumers = conn_->Command({"XINFO", "CONSUMERS", "orders", "h"});
  ASSERT_THAT(consumers, IsOk());
  std::vector<std::pair<std::string, int64_t>> seen;
  for (const RedisReply& c : consumers->elements) {
    std::string name;
    int64_t pending = -1;
    for (size_t i = 0; i + 1 < c.elements.size(); i += 2) {
      if (c.elements[i].str == "name") name = c.elements[i + 1].str;
      if (c.elements[i].str == "pending") pending = c.elements[i + 1].integer;
    }
    seen.emplace_back(name, pending);
  }
  EXPECT_THAT(seen, ElementsAre(std::make_pair(std::string("h-web-7f9c-a"), int64_t{3})));
  // A second stream of the handler here shares that consumer, and says so.
  v1::Register other = RegisterFor("orders", "h", 5);
  other.set_consumer_label("web-8");
  auto second = Subscribe(other);
  EXPECT_EQ(second->registered().names().consumer(), "h-web-7f9c-a");
  sub->AckAll();
  ASSERT_TRUE(WaitFor([&] { return Pending("orders", "h") == 0; }));
}

// Issue 10 item 9: a registration of a handler with another retry or
// dead-letter policy was silently accepted (the first policy applied).
TEST_F(SubscribeTest, RegistrationWithAnotherPolicyIsFailedPreconditionNamingTheField) {
  v1::Register reg = RegisterFor("orders", "h");
  reg.mutable_retry_policy()->set_max_retries(5);
  auto first = Subscribe(reg);
  v1::Register other = reg;
  other.mutable_retry_policy()->set_max_retries(3);
  TestSubscriber refused(client_->broker(), other);
  ASSERT_TRUE(refused.WaitFinished());
  EXPECT_EQ(refused.status().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(refused.status().error_message(),
            "register.retry_policy.max_retries: 3 differs from the registered 5 (handler 'h' on "
            "'orders' is registered on this daemon; every registration of a handler must agree)");
  v1::Register capped = reg;
  capped.mutable_dead_letter_policy()->set_max_len(10);
  capped.mutable_dead_letter_policy()->set_overflow(v1::DeadLetterPolicy::OVERFLOW_EVICT_OLDEST);
  TestSubscriber refused_dlq(client_->broker(), capped);
  ASSERT_TRUE(refused_dlq.WaitFinished());
  EXPECT_EQ(refused_dlq.status().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused_dlq.status().error_message(),
              HasSubstr("register.dead_letter_policy.max_len: 10 differs from the registered 0"));
  // The same policy joins; both streams share the work.
  auto same = Subscribe(reg);
  EXPECT_EQ(same->registered().retry_policy().max_retries(), 5u);
  const std::vector<std::string> published = PublishN("orders", 4);
  ASSERT_TRUE(WaitFor([&] { return first->delivery_count() + same->delivery_count() == 4; }));
  // Once every stream of the handler left, another policy may register.
  first->CloseWrites();
  same->CloseWrites();
  ASSERT_TRUE(first->WaitFinished());
  ASSERT_TRUE(same->WaitFinished());
  auto later = Subscribe(other);
  EXPECT_EQ(later->registered().retry_policy().max_retries(), 3u);
}

}  // namespace
}  // namespace redrive
