// The Admin service's domain code against a real redis-server, without gRPC:
// the handler catalogue (handler_catalogue.h) and redrive planning
// (redrive_plan.h). Exact statuses, messages, numbers and written keys.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/handler_catalogue.h"
#include "daemon/redis/errors.h"
#include "daemon/redis/job_store.h"
#include "daemon/redis/keyspace.h"
#include "daemon/redis/streams.h"
#include "daemon/redrive_plan.h"
#include "daemon/retry_fields.h"
#include "tests/testing/redis_inspect.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/wait.h"

namespace redrive {
namespace {

using ::redrive::testing::IsOk;
using ::redrive::testing::StatusIs;
using ::redrive::testing::TakeOk;
using ::redrive::testing::TestRedisServer;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class AdminDomainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = TestRedisServer::Start();
    ASSERT_NE(server_, nullptr);
    redis_ = server_->Connect();
  }

  static v1::HandlerRef Ref(const std::string& channel, const std::string& handler) {
    v1::HandlerRef ref;
    ref.set_channel(channel);
    ref.set_handler_id(handler);
    return ref;
  }

  void Run(const RedisArgv& argv) { ASSERT_THAT(CheckReply(redis_->Command(argv)), IsOk()); }

  void Register(const std::string& channel, const std::string& handler) {
    v1::Registered reg;
    reg.set_channel(channel);
    reg.set_handler_id(handler);
    reg.mutable_names()->set_stream(absl::StrCat("registered:", channel));
    reg.mutable_retry_policy()->set_max_retries(7);
    ASSERT_THAT(HSet(*redis_, kHandlersRegistryKey, RegistryField(channel, handler),
                     reg.SerializeAsString()),
                IsOk());
  }

  // A redrive-made dead letter with `redrives` redrives so far.
  void DeadLetter(const std::string& dlq, const std::string& id, int redrives) {
    Run({"XADD", dlq, id, kDataField, "{}", kReasonField, "max_retries", kRedrivesField,
         absl::StrCat(redrives)});
  }

  std::unique_ptr<TestRedisServer> server_;
  std::unique_ptr<RedisConnection> redis_;
  const CatalogueOptions options_{KeyStyle::kEggAI, "inst-1"};
};

TEST_F(AdminDomainTest, AHandlerIsKnownByRegistrationDlqRetryStreamOrGroupOnly) {
  const HandlerKeys a = MakeHandlerKeys("orders", "a", KeyStyle::kEggAI);
  EXPECT_THAT(CheckKnown(*redis_, Ref("orders", "a"), KeyStyle::kEggAI),
              StatusIs(absl::StatusCode::kNotFound, "no handler 'a' on channel 'orders'"));
  Register("orders", "a");
  EXPECT_THAT(CheckKnown(*redis_, Ref("orders", "a"), KeyStyle::kEggAI), IsOk());

  const HandlerKeys b = MakeHandlerKeys("orders", "b", KeyStyle::kEggAI);
  DeadLetter(b.dlq_stream, "1-0", 0);
  EXPECT_THAT(CheckKnown(*redis_, Ref("orders", "b"), KeyStyle::kEggAI), IsOk());

  const HandlerKeys c = MakeHandlerKeys("orders", "c", KeyStyle::kEggAI);
  Run({"XADD", c.retry_stream, "1-0", "f", "v"});
  EXPECT_THAT(CheckKnown(*redis_, Ref("orders", "c"), KeyStyle::kEggAI), IsOk());

  Run({"XGROUP", "CREATE", a.stream, "d", "$", "MKSTREAM"});
  EXPECT_THAT(CheckKnown(*redis_, Ref("orders", "d"), KeyStyle::kEggAI), IsOk());
  EXPECT_THAT(CheckKnown(*redis_, Ref("orders", "e"), KeyStyle::kEggAI),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(AdminDomainTest, DescriptionJoinsRedisNumbersWithTheLocalConsumer) {
  const HandlerKeys k = MakeHandlerKeys("orders", "billing", KeyStyle::kEggAI);
  Run({"XADD", k.stream, "1-0", "n", "1"});
  Run({"XADD", k.stream, "2-0", "n", "2"});
  Run({"XADD", k.stream, "3-0", "n", "3"});
  Run({"XGROUP", "CREATE", k.stream, k.group, "0"});
  Run({"XREADGROUP", "GROUP", k.group, "billing-labelled-inst-1", "COUNT", "1", "STREAMS", k.stream,
       ">"});
  Run({"XREADGROUP", "GROUP", k.group, "billing-other", "COUNT", "1", "STREAMS", k.stream, ">"});
  Run({"XGROUP", "CREATE", k.retry_stream, k.retry_group, "$", "MKSTREAM"});
  Run({"XADD", k.retry_stream, "*", "n", "r"});  // unread: retry lag 1
  Run({"ZADD", k.due_zset, "1", "m1", "2", "m2"});
  DeadLetter(k.dlq_stream, "1000-0", 0);
  ASSERT_THAT(RecordPaused(*redis_, Ref("orders", "billing"), true,
                           absl::FromUnixMillis(1700000000123), KeyStyle::kEggAI),
              IsOk());
  EXPECT_EQ(TakeOk(HGet(*redis_, kPausedHandlersKey, RegistryField("orders", "billing"))),
            std::optional<std::string>("1700000000123"));

  const std::vector<LocalHandler> local = {{"orders", "billing", "billing-labelled-inst-1", 2}};
  v1::HandlerInfo info =
      TakeOk(DescribeHandler(*redis_, Ref("orders", "billing"), local, options_));
  EXPECT_EQ(info.handler().handler_id(), "billing");
  EXPECT_EQ(info.names().stream(), k.stream);  // unregistered: derived names
  EXPECT_EQ(info.names().dlq_stream(), k.dlq_stream);
  EXPECT_EQ(info.names().consumer(), "billing-labelled-inst-1");
  EXPECT_EQ(info.pending(), 2u);
  EXPECT_EQ(info.lag(), 1);
  EXPECT_EQ(info.retry_depth(), 3u);  // 2 due + 1 unread retry entry
  EXPECT_EQ(info.dlq_depth(), 1u);
  EXPECT_GT(info.oldest_dead_letter_age_ms(), 1000000);  // dead-lettered at 1 s after 1970
  EXPECT_TRUE(info.paused());
  EXPECT_EQ(info.connected_streams(), 2u);
  ASSERT_EQ(info.consumers_size(), 2);
  EXPECT_EQ(info.consumers(0).name(), "billing-labelled-inst-1");
  EXPECT_TRUE(info.consumers(0).local());
  EXPECT_EQ(info.consumers(0).pending(), 1u);
  EXPECT_EQ(info.consumers(1).name(), "billing-other");
  EXPECT_FALSE(info.consumers(1).local());

  ASSERT_THAT(RecordPaused(*redis_, Ref("orders", "billing"), false, absl::Now(), KeyStyle::kEggAI),
              IsOk());
  v1::HandlerInfo resumed =
      TakeOk(DescribeHandler(*redis_, Ref("orders", "billing"), {}, options_));
  EXPECT_FALSE(resumed.paused());
  EXPECT_EQ(resumed.names().consumer(), ConsumerName("billing", "inst-1"));
  EXPECT_EQ(resumed.connected_streams(), 0u);
  EXPECT_THAT(TakeOk(HGetAll(*redis_, kPausedHandlersKey)), IsEmpty());
  EXPECT_THAT(RecordPaused(*redis_, Ref("orders", "nobody"), true, absl::Now(), KeyStyle::kEggAI),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(TakeOk(HGetAll(*redis_, kPausedHandlersKey)), IsEmpty());
}

TEST_F(AdminDomainTest, ListingIsSortedFilteredAndSkipsPresenceFields) {
  Register("payments", "z");
  Register("orders", "b");
  Register("orders", "a");
  ASSERT_THAT(HSet(*redis_, kHandlersRegistryKey,
                   absl::StrCat(RegistryField("orders", "a"), " inst-9"), "1700000000000"),
              IsOk());
  std::vector<v1::HandlerInfo> all = TakeOk(ListHandlers(*redis_, "", {}, options_));
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].handler().handler_id(), "a");
  EXPECT_EQ(all[1].handler().handler_id(), "b");
  EXPECT_EQ(all[2].handler().channel(), "payments");
  // Registered handlers carry their registration's names and policies.
  EXPECT_EQ(all[0].names().stream(), "registered:orders");
  EXPECT_EQ(all[0].retry_policy().max_retries(), 7u);
  std::vector<v1::HandlerInfo> orders = TakeOk(ListHandlers(*redis_, "orders", {}, options_));
  ASSERT_EQ(orders.size(), 2u);
  EXPECT_EQ(orders[0].handler().channel(), "orders");
  EXPECT_EQ(orders[1].handler().channel(), "orders");
}

TEST_F(AdminDomainTest, TargetsResolveToTheRetryStreamOrAChannelThatIsRead) {
  const HandlerKeys k = MakeHandlerKeys("orders", "billing", KeyStyle::kEggAI);
  v1::RedriveDeadLettersRequest request;
  *request.mutable_handler() = Ref("orders", "billing");
  request.set_all(true);
  request.set_reset_attempts(true);
  request.set_rate_per_second(50);
  RedriveJobSpec spec = TakeOk(PlanRedriveTarget(*redis_, request, KeyStyle::kEggAI));
  EXPECT_EQ(spec.target.kind(), v1::RedriveTarget::TARGET_HANDLER_RETRY);
  EXPECT_EQ(spec.dlq_stream, k.dlq_stream);
  EXPECT_EQ(spec.target_stream, k.retry_stream);
  EXPECT_EQ(spec.target_group, k.retry_group);
  EXPECT_TRUE(spec.reset_attempts);
  EXPECT_EQ(spec.rate_per_second, 50u);

  request.mutable_target()->set_kind(v1::RedriveTarget::TARGET_CHANNEL);
  request.mutable_target()->set_channel("audit");
  EXPECT_THAT(PlanRedriveTarget(*redis_, request, KeyStyle::kEggAI),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "no consumer group reads 'audit': nothing would receive the redriven "
                       "messages (register a handler first)"));
  Run({"XGROUP", "CREATE", "audit", "reader", "$", "MKSTREAM"});
  spec = TakeOk(PlanRedriveTarget(*redis_, request, KeyStyle::kEggAI));
  EXPECT_EQ(spec.target_stream, "audit");
  EXPECT_EQ(spec.target_group, "");

  request.mutable_target()->set_kind(v1::RedriveTarget::TARGET_SOURCE_CHANNEL);
  request.mutable_target()->clear_channel();
  Run({"SET", k.stream, "not a stream"});
  EXPECT_THAT(PlanRedriveTarget(*redis_, request, KeyStyle::kEggAI),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "target key 'orders' exists and is not a stream"));
}

TEST_F(AdminDomainTest, SelectionKeepsTheOrderAndADryRunSaysWhatEachEntryWouldDo) {
  const std::string dlq = MakeHandlerKeys("orders", "billing", KeyStyle::kEggAI).dlq_stream;
  DeadLetter(dlq, "1-0", 0);
  DeadLetter(dlq, "2-0", 5);  // quarantined with max_redrives 5
  DeadLetter(dlq, "3-0", 1);
  v1::RedriveDeadLettersRequest request;
  *request.mutable_handler() = Ref("orders", "billing");
  for (const char* id : {"3-0", "9-0", "1-0", "3-0"}) request.mutable_ids()->add_entry_ids(id);
  EXPECT_THAT(TakeOk(SelectForRedrive(*redis_, request, dlq, 5, nullptr)),
              ElementsAre("3-0", "9-0", "1-0"));

  v1::RedriveDeadLettersResponse dry;
  request.mutable_ids()->add_entry_ids("2-0");
  ASSERT_THAT(SelectForRedrive(*redis_, request, dlq, 5, &dry), IsOk());
  EXPECT_THAT(dry.would_move(), ElementsAre("3-0", "1-0"));
  EXPECT_THAT(dry.would_skip(), ElementsAre("2-0", "9-0"));
  EXPECT_EQ(dry.would_move_count(), 2u);
  EXPECT_EQ(dry.would_skip_count(), 2u);
  EXPECT_FALSE(dry.ids_truncated());

  v1::RedriveDeadLettersRequest all;
  *all.mutable_handler() = Ref("orders", "billing");
  all.set_all(true);
  all.set_include_quarantined(true);
  v1::RedriveDeadLettersResponse all_dry;
  EXPECT_THAT(TakeOk(SelectForRedrive(*redis_, all, dlq, 5, &all_dry)),
              ElementsAre("1-0", "2-0", "3-0"));
  EXPECT_THAT(all_dry.would_move(), ElementsAre("1-0", "2-0", "3-0"));
  EXPECT_EQ(all_dry.would_skip_count(), 0u);

  v1::RedriveDeadLettersRequest by_time;
  *by_time.mutable_handler() = Ref("orders", "billing");
  by_time.mutable_filter()->set_from_unix_ms(2);
  EXPECT_THAT(TakeOk(SelectForRedrive(*redis_, by_time, dlq, 5, nullptr)),
              ElementsAre("2-0", "3-0"));
  // Nothing was written: only the DLQ exists.
  EXPECT_THAT(::redrive::testing::SortedKeys(*redis_), ElementsAre(dlq));
}

// Redis Cluster's step-record form, on one server (the logic does not
// depend on slots): a job whose daemon died after a step ran but before it
// was handed over to the job hash is resumed here; the step is handed over
// from its record, not run again (nothing counted skipped, nothing moved
// twice), and the rest is moved.
TEST_F(AdminDomainTest, StepRecordsHandOverAStepThatRanBeforeADaemonDied) {
  const HandlerKeys k = MakeHandlerKeys("orders", "billing", KeyStyle::kCluster);
  for (const char* id : {"1-0", "2-0", "3-0", "4-0"}) DeadLetter(k.dlq_stream, id, 0);
  // The dead daemon's job: RUNNING, stale heartbeat, at cursor 0 ...
  const std::string job_id = "00000000000000aa";
  NewJobRecord record;
  record.job_id = job_id;
  record.hash_key = RedriveJobKey(job_id);
  record.ids_key = RedriveJobIdsKey(job_id);
  record.index_key = std::string(kRedriveJobsKey);
  record.created_ms = 1;
  record.fields = {{"channel", "orders"},
                   {"handler_id", "billing"},
                   {"target_kind", "1"},
                   {"target_channel", ""},
                   {"dlq", k.dlq_stream},
                   {"target_stream", k.retry_stream},
                   {"target_group", k.retry_group},
                   {"reset", "0"},
                   {"include_quarantined", "0"},
                   {"rate", "0"},
                   {"state", "RUNNING"},
                   {"owner", "dead-daemon:1"},
                   {"heartbeat_ms", "1"},
                   {"cursor", "0"},
                   {"total", "4"},
                   {"moved", "0"},
                   {"skipped", "0"},
                   {"failed", "0"},
                   {"created_ms", "1"},
                   {"updated_ms", "1"},
                   {"error", ""}};
  record.ids = {"1-0", "2-0", "3-0", "4-0"};
  ASSERT_THAT(CreateJobRecord(*redis_, record), IsOk());
  // ... whose first step (ids 0..1) ran: moved, recorded, not handed over.
  Run({"XDEL", k.dlq_stream, "1-0", "2-0"});
  Run({"XADD", k.retry_stream, "*", kDataField, "{}"});
  Run({"XADD", k.retry_stream, "*", kDataField, "{}"});
  Run({"HSET", RedriveStepRecordKey(k.dlq_stream, job_id), "from", "0", "to", "2", "moved", "2",
       "skipped", "0", "failed", "0"});

  RedriveJobs::Options options;
  options.redis.address = server_->address();
  options.instance_id = "inst-2";
  options.step_records = true;
  options.heartbeat = absl::Milliseconds(100);
  options.takeover_after = absl::Milliseconds(200);
  options.scan_interval = absl::Milliseconds(50);
  RedriveJobs jobs(options);
  v1::RedriveJob job;
  ASSERT_TRUE(::redrive::testing::WaitFor([&] {
    absl::StatusOr<v1::RedriveJob> now = jobs.Get(*redis_, job_id);
    if (now.ok()) job = *now;
    return now.ok() && job.state() != v1::RedriveJob::RUNNING;
  }));
  EXPECT_EQ(job.state(), v1::RedriveJob::SUCCEEDED) << job.error();
  EXPECT_EQ(job.moved(), 4u);
  EXPECT_EQ(job.skipped(), 0u);
  EXPECT_EQ(job.failed(), 0u);
  EXPECT_EQ(TakeOk(XLen(*redis_, k.retry_stream)), 4);
  EXPECT_EQ(TakeOk(XLen(*redis_, k.dlq_stream)), 0);
  EXPECT_EQ(
      TakeOk(HGetAll(*redis_, RedriveStepRecordKey(k.dlq_stream, job_id))),
      (HashFields{{"from", "2"}, {"to", "4"}, {"moved", "2"}, {"skipped", "0"}, {"failed", "0"}}));
}

TEST_F(AdminDomainTest, StepRecordsRefuseATargetInAnotherSlot) {
  const HandlerKeys k = MakeHandlerKeys("orders", "billing", KeyStyle::kCluster);
  RedriveJobSpec spec;
  spec.dlq_stream = k.dlq_stream;
  spec.target_stream = k.retry_stream;
  RedriveJobs::Options options;
  options.redis.address = server_->address();
  options.step_records = true;
  RedriveJobs clustered(options);
  EXPECT_THAT(clustered.CheckTarget(spec), IsOk());
  spec.target_stream = k.stream;  // the source channel: same hash tag
  EXPECT_THAT(clustered.CheckTarget(spec), IsOk());
  spec.target_stream = MakeHandlerKeys("audit", "x", KeyStyle::kCluster).stream;
  EXPECT_THAT(clustered.CheckTarget(spec),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::HasSubstr("its target must be in the dead letters' slot")));
  options.step_records = false;
  RedriveJobs single(options);
  EXPECT_THAT(single.CheckTarget(spec), IsOk());
}

}  // namespace
}  // namespace redrive
