// Outbox (daemon/engine/outbox.h): deliveries in batches within the
// delivery budget (delivery_budget.h), a single oversized delivery alone,
// notices after the deliveries.
#include "daemon/engine/outbox.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "daemon/delivery_budget.h"
#include "tests/fakes/fake_session_sink.h"

namespace redrive {
namespace {

using ::redrive::testing::FakeSessionSink;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

v1::Delivery D(uint64_t id, size_t payload_bytes = 10) {
  v1::Delivery d;
  d.set_delivery_id(id);
  d.set_payload(std::string(payload_bytes, 'x'));
  return d;
}

// A delivery whose DeliveryCost is exactly `cost` (cost ≥ 20).
v1::Delivery WithCost(uint64_t id, size_t cost) {
  size_t payload = cost;
  while (payload > 0 && DeliveryCost(D(id, payload)) > cost) --payload;
  v1::Delivery d = D(id, payload);
  EXPECT_EQ(DeliveryCost(d), cost);
  return d;
}

// The delivery ids of each message, and "notices" for a notices message.
std::vector<std::vector<uint64_t>> Shape(const FakeSessionSink& sink) {
  std::vector<std::vector<uint64_t>> out;
  for (const v1::SubscribeResponse& r : sink.responses()) {
    std::vector<uint64_t> ids;
    if (r.has_deliveries()) {
      for (const v1::Delivery& d : r.deliveries().deliveries()) ids.push_back(d.delivery_id());
    } else if (r.has_notices()) {
      for (const v1::Notice& n : r.notices().notices()) ids.push_back(1000 + n.delivery_id());
    }
    out.push_back(ids);
  }
  return out;
}

TEST(OutboxTest, QueuedDeliveriesGoAsOneMessageThenTheNotices) {
  Outbox box;
  FakeSessionSink sink;
  box.AddNotice(7, v1::Notice::UNKNOWN_DELIVERY, "delivery 7 is not in flight");
  box.Add(D(1));
  box.Add(D(2));
  box.AddNotice(8, v1::Notice::ALREADY_SETTLED, "delivery 8 was already acked");
  box.FlushTo(sink);
  EXPECT_THAT(Shape(sink), ElementsAre(ElementsAre(1, 2), ElementsAre(1007, 1008)));
  const std::vector<v1::SubscribeResponse> sent = sink.responses();
  const v1::Notices& notices = sent[1].notices();
  EXPECT_EQ(notices.notices(0).code(), v1::Notice::UNKNOWN_DELIVERY);
  EXPECT_EQ(notices.notices(0).message(), "delivery 7 is not in flight");
  EXPECT_EQ(notices.notices(1).code(), v1::Notice::ALREADY_SETTLED);
  EXPECT_EQ(notices.notices(1).message(), "delivery 8 was already acked");
  EXPECT_EQ(sent[0].deliveries().deliveries(0).payload(), std::string(10, 'x'));
}

TEST(OutboxTest, AFlushSendsEachMessageOnce) {
  Outbox box;
  FakeSessionSink sink;
  box.FlushTo(sink);
  EXPECT_THAT(sink.responses(), IsEmpty());
  box.Add(D(1));
  box.FlushTo(sink);
  box.FlushTo(sink);
  EXPECT_THAT(Shape(sink), ElementsAre(ElementsAre(1)));
}

TEST(OutboxTest, DeliveriesThatFillTheBudgetExactlyShareAMessage) {
  Outbox box;
  FakeSessionSink sink;
  box.Add(WithCost(1, kDeliveryBudgetBytes / 2));
  box.Add(WithCost(2, kDeliveryBudgetBytes / 2));
  box.Add(WithCost(3, 100));  // one byte too many: the next message
  box.FlushTo(sink);
  EXPECT_THAT(Shape(sink), ElementsAre(ElementsAre(1, 2), ElementsAre(3)));
}

TEST(OutboxTest, SplitsBatchesAtTheBudget) {
  Outbox box;
  FakeSessionSink sink;
  const size_t third = kDeliveryBudgetBytes / 3;
  for (uint64_t id = 1; id <= 7; ++id) box.Add(WithCost(id, third + 1));  // two fit, not three
  box.AddNotice(9, v1::Notice::UNKNOWN_DELIVERY, "x");
  box.FlushTo(sink);
  EXPECT_THAT(Shape(sink), ElementsAre(ElementsAre(1, 2), ElementsAre(3, 4), ElementsAre(5, 6),
                                       ElementsAre(7), ElementsAre(1009)));
  // The next flush starts from an empty budget.
  FakeSessionSink next;
  box.Add(WithCost(10, third));
  box.Add(WithCost(11, third));
  box.Add(WithCost(12, third));
  box.FlushTo(next);
  EXPECT_THAT(Shape(next), ElementsAre(ElementsAre(10, 11, 12)));
}

TEST(OutboxTest, ASingleOversizedDeliveryGoesAlone) {
  Outbox box;
  FakeSessionSink sink;
  box.Add(D(1));
  box.Add(WithCost(2, kDeliveryBudgetBytes + 1));
  box.Add(D(3));
  box.Add(D(4));
  box.FlushTo(sink);
  EXPECT_THAT(Shape(sink), ElementsAre(ElementsAre(1), ElementsAre(2), ElementsAre(3, 4)));
  const std::vector<v1::SubscribeResponse> sent = sink.responses();
  EXPECT_GT(DeliveryCost(sent[1].deliveries().deliveries(0)), kDeliveryBudgetBytes);
}

TEST(OutboxTest, AnOversizedFirstDeliveryIsNotPrecededByAnEmptyMessage) {
  Outbox box;
  FakeSessionSink sink;
  box.Add(WithCost(1, kDeliveryBudgetBytes * 2));
  box.FlushTo(sink);
  EXPECT_THAT(Shape(sink), ElementsAre(ElementsAre(1)));
}

}  // namespace
}  // namespace redrive
