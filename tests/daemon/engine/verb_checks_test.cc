// verb_checks (daemon/engine/verb_checks.h): the notice for a verb whose
// delivery is not in flight (unknown, already settled; a repeated ACK is
// silent) and the range checks of NACK, TERMINATE and EXTEND, each limit
// allowed at the boundary and refused one past it; a verb with no action is
// invalid.
#include "daemon/engine/verb_checks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "daemon/subscription.h"

namespace redrive {
namespace {

using ::testing::Optional;
using ::testing::Pair;
using Outcome = LeaseTable::Outcome;

constexpr char kNackLimits[] =
    "nack.reason at most 4096 bytes, error_code at most 128, delay_ms at most 86400000";
constexpr char kTerminateLimits[] = "terminate.reason at most 4096 bytes, error_code at most 128";

v1::Verb Ack(uint64_t id) {
  v1::Verb v;
  v.set_delivery_id(id);
  v.mutable_ack();
  return v;
}

v1::Verb Nack(uint64_t id, size_t reason_bytes = 0, size_t code_bytes = 0) {
  v1::Verb v;
  v.set_delivery_id(id);
  v.mutable_nack()->set_reason(std::string(reason_bytes, 'r'));
  v.mutable_nack()->set_error_code(std::string(code_bytes, 'c'));
  return v;
}

v1::Verb NackDelay(uint64_t id, uint32_t delay_ms) {
  v1::Verb v = Nack(id);
  v.mutable_nack()->set_delay_ms(delay_ms);
  return v;
}

v1::Verb Terminate(uint64_t id, size_t reason_bytes = 0, size_t code_bytes = 0) {
  v1::Verb v;
  v.set_delivery_id(id);
  v.mutable_terminate()->set_reason(std::string(reason_bytes, 'r'));
  v.mutable_terminate()->set_error_code(std::string(code_bytes, 'c'));
  return v;
}

v1::Verb Extend(uint64_t id, uint32_t lease_ms) {
  v1::Verb v;
  v.set_delivery_id(id);
  v.mutable_extend()->set_lease_ms(lease_ms);
  return v;
}

v1::Verb NoAction(uint64_t id) {
  v1::Verb v;
  v.set_delivery_id(id);
  return v;
}

TEST(VerbChecksTest, AVerbForAnUnknownDeliveryGetsUnknownDeliveryNamingItsId) {
  for (const v1::Verb& verb :
       {Ack(7), Nack(7), Terminate(7), Extend(7, 1000), NoAction(7), Nack(7, kMaxVerbReason + 1)}) {
    EXPECT_THAT(NotInFlight(verb, std::nullopt),
                Optional(Pair(v1::Notice::UNKNOWN_DELIVERY, "no delivery 7 on this stream")))
        << verb.ShortDebugString();
  }
}

TEST(VerbChecksTest, ARepeatedAckIsSilent) {
  EXPECT_EQ(NotInFlight(Ack(7), Outcome::kAcked), std::nullopt);
}

TEST(VerbChecksTest, AnAckAfterAnyOtherOutcomeIsAlreadySettled) {
  for (Outcome o : {Outcome::kNacked, Outcome::kTerminated, Outcome::kExpired, Outcome::kMoved}) {
    EXPECT_THAT(NotInFlight(Ack(9), o),
                Optional(Pair(v1::Notice::ALREADY_SETTLED, "delivery 9 was already settled")))
        << static_cast<int>(o);
  }
}

TEST(VerbChecksTest, AnyOtherVerbOnASettledDeliveryIsAlreadySettledEvenAfterAnAck) {
  for (const v1::Verb& verb : {Nack(3), Terminate(3), Extend(3, 0), NoAction(3)}) {
    for (Outcome o : {Outcome::kAcked, Outcome::kNacked, Outcome::kExpired}) {
      EXPECT_THAT(NotInFlight(verb, o),
                  Optional(Pair(v1::Notice::ALREADY_SETTLED, "delivery 3 was already settled")))
          << verb.ShortDebugString() << " after " << static_cast<int>(o);
    }
  }
}

TEST(VerbChecksTest, AnAckIsValid) { EXPECT_EQ(InvalidVerb(Ack(1)), ""); }

TEST(VerbChecksTest, AVerbWithNoActionIsInvalid) {
  EXPECT_EQ(InvalidVerb(NoAction(1)), "verb has no action");
}

TEST(VerbChecksTest, ANackReasonMayHave4096BytesNotMore) {
  EXPECT_EQ(InvalidVerb(Nack(1)), "");
  EXPECT_EQ(InvalidVerb(Nack(1, kMaxVerbReason)), "");
  EXPECT_EQ(InvalidVerb(Nack(1, kMaxVerbReason + 1)), kNackLimits);
}

TEST(VerbChecksTest, ANackErrorCodeMayHave128BytesNotMore) {
  EXPECT_EQ(InvalidVerb(Nack(1, 0, kMaxVerbErrorCode)), "");
  EXPECT_EQ(InvalidVerb(Nack(1, kMaxVerbReason, kMaxVerbErrorCode)), "");
  EXPECT_EQ(InvalidVerb(Nack(1, 0, kMaxVerbErrorCode + 1)), kNackLimits);
}

TEST(VerbChecksTest, ANackDelayMayBeZeroToADayNotMore) {
  EXPECT_EQ(InvalidVerb(NackDelay(1, 0)), "");
  EXPECT_EQ(InvalidVerb(NackDelay(1, kMaxDurationMs)), "");
  EXPECT_EQ(InvalidVerb(NackDelay(1, kMaxDurationMs + 1)), kNackLimits);
}

TEST(VerbChecksTest, ATerminateReasonMayHave4096BytesNotMore) {
  EXPECT_EQ(InvalidVerb(Terminate(1)), "");
  EXPECT_EQ(InvalidVerb(Terminate(1, kMaxVerbReason)), "");
  EXPECT_EQ(InvalidVerb(Terminate(1, kMaxVerbReason + 1)), kTerminateLimits);
}

TEST(VerbChecksTest, ATerminateErrorCodeMayHave128BytesNotMore) {
  EXPECT_EQ(InvalidVerb(Terminate(1, kMaxVerbReason, kMaxVerbErrorCode)), "");
  EXPECT_EQ(InvalidVerb(Terminate(1, 0, kMaxVerbErrorCode + 1)), kTerminateLimits);
}

TEST(VerbChecksTest, AnExtendMayBeZeroToADayNotMore) {
  EXPECT_EQ(InvalidVerb(Extend(1, 0)), "");
  EXPECT_EQ(InvalidVerb(Extend(1, kMaxDurationMs)), "");
  EXPECT_EQ(InvalidVerb(Extend(1, kMaxDurationMs + 1)),
            "extend.lease_ms 86400001 is outside 0..86400000");
}

}  // namespace
}  // namespace redrive
