// DecodeDelivery (daemon/delivery_decoder.h): one stream entry → the
// Delivery a client receives: the envelope, the attempt and original id
// from EggAI's retry metadata (stripped from the body), the previous error;
// poison is an error unless lenient, which delivers the raw bytes.
#include "daemon/delivery_decoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon/retry_metadata.h"
#include "tests/testing/envelope_bytes.h"
#include "tests/testing/status_matchers.h"

namespace redrive {
namespace {

using ::redrive::testing::SpecEnvelope;
using ::redrive::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

StreamEntry Entry(FieldList fields) {
  StreamEntry e;
  e.id = "3-0";
  e.fields = std::move(fields);
  return e;
}

std::string Json(const std::string& body) {
  return SpecEnvelope({{"content-type", "application/json"}, {"x-seq", "3"}}, body);
}

TEST(DeliveryDecoderTest, AFirstDeliveryIsAttemptOneWithTheEnvelopeAsWritten) {
  absl::StatusOr<DecodedDelivery> d =
      DecodeDelivery(Entry({{"__data__", Json("{\"n\":3}")}}), /*lenient=*/false);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->attempt, 1u);
  EXPECT_EQ(d->unreadable, "");
  EXPECT_EQ(d->message.payload(), "{\"n\":3}");
  EXPECT_EQ(d->message.content_type(), "application/json");
  ASSERT_EQ(d->message.headers_size(), 1);
  EXPECT_EQ(d->message.headers(0).key(), "x-seq");
  EXPECT_EQ(d->message.headers(0).value(), "3");
  EXPECT_EQ(d->message.source_format(), v1::SOURCE_FORMAT_BINARY_V1);
  EXPECT_EQ(d->message.original_entry_id(), "");
  EXPECT_EQ(d->message.previous_error(), "");
  EXPECT_EQ(d->message.previous_error_code(), "");
  // The dispatcher's part is left unset.
  EXPECT_EQ(d->message.delivery_id(), 0u);
  EXPECT_EQ(d->message.entry_id(), "");
  EXPECT_EQ(d->message.attempt(), 0u);
}

TEST(DeliveryDecoderTest, ARetriedJsonEntryHasItsAttemptOriginalIdAndErrorAndNoMetadataKeys) {
  absl::StatusOr<DecodedDelivery> d = DecodeDelivery(
      Entry(
          {{"__data__", Json("{\"n\":3,\"_retry_count\":\"2\",\"_original_message_id\":\"1-0\"}")},
           {"x-redrive-last-error", "timeout"},
           {"x-redrive-last-error-code", "E_TIMEOUT"},
           {"x-redrive-history", "[]"}}),
      /*lenient=*/false);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->attempt, 3u);
  EXPECT_EQ(d->message.payload(), "{\"n\":3}");
  EXPECT_EQ(d->message.original_entry_id(), "1-0");
  EXPECT_EQ(d->message.previous_error(), "timeout");
  EXPECT_EQ(d->message.previous_error_code(), "E_TIMEOUT");
  EXPECT_THAT(d->message.fields(), IsEmpty());
  ASSERT_EQ(d->message.headers_size(), 1);
  EXPECT_EQ(d->message.headers(0).key(), "x-seq");
}

TEST(DeliveryDecoderTest, ARetriedOpaqueBodyKeepsItsBytesAndReadsTheAttemptHeader) {
  absl::StatusOr<DecodedDelivery> d = DecodeDelivery(
      Entry(
          {{"__data__", SpecEnvelope({{"x-redrive-attempt", "4"}, {"x-redrive-original-id", "1-0"}},
                                     "plain text")}}),
      /*lenient=*/false);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->attempt, 5u);
  EXPECT_EQ(d->message.payload(), "plain text");
  EXPECT_EQ(d->message.original_entry_id(), "1-0");
}

TEST(DeliveryDecoderTest, ARetriedFieldMapHidesTheRedriveFields) {
  absl::StatusOr<DecodedDelivery> d = DecodeDelivery(Entry({{"order", "42"},
                                                            {"x-redrive-attempt", "1"},
                                                            {"x-redrive-original-id", "2-0"},
                                                            {"x-redrive-last-error", "boom"}}),
                                                     /*lenient=*/false);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->attempt, 2u);
  EXPECT_EQ(d->message.original_entry_id(), "2-0");
  EXPECT_EQ(d->message.previous_error(), "boom");
  ASSERT_EQ(d->message.fields_size(), 1);
  EXPECT_EQ(d->message.fields(0).name(), "order");
  EXPECT_EQ(d->message.fields(0).value(), "42");
  EXPECT_EQ(d->message.payload(), "{\"order\":\"42\"}");
}

TEST(DeliveryDecoderTest, UnusableRetryMetadataIsPoison) {
  absl::StatusOr<DecodedDelivery> d = DecodeDelivery(
      Entry({{"__data__", Json("{\"n\":4,\"_retry_count\":\"abc\"}")}}), /*lenient=*/false);
  EXPECT_THAT(d, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("_retry_count")));
  EXPECT_TRUE(IsPoison(d.status()));
}

TEST(DeliveryDecoderTest, LenientDeliversPoisonAsItIsAndSaysWhy) {
  absl::StatusOr<DecodedDelivery> d =
      DecodeDelivery(Entry({{"__data__", Json("{\"n\":4,\"_retry_count\":\"abc\"}")},
                            {"x-redrive-last-error", "boom"}}),
                     /*lenient=*/true);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(d->unreadable, HasSubstr("_retry_count"));
  EXPECT_EQ(d->attempt, 1u);
  EXPECT_EQ(d->message.payload(), "{\"n\":4,\"_retry_count\":\"abc\"}");
  EXPECT_EQ(d->message.previous_error(), "");
}

TEST(DeliveryDecoderTest, ACorruptEnvelopeIsPoisonAndLenientlyItsRawBytes) {
  std::string corrupt = SpecEnvelope({{"k", "v"}}, "body");
  corrupt[14] = '\x7f';  // data_start far beyond the end
  EXPECT_THAT(DecodeDelivery(Entry({{"__data__", corrupt}}), /*lenient=*/false),
              StatusIs(absl::StatusCode::kDataLoss));
  absl::StatusOr<DecodedDelivery> d = DecodeDelivery(Entry({{"__data__", corrupt}}), true);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_NE(d->unreadable, "");
  EXPECT_EQ(d->message.payload(), corrupt);
  EXPECT_EQ(d->attempt, 1u);
}

}  // namespace
}  // namespace redrive
