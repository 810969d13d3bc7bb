// DecodeDelivery: one stream entry → the Delivery a client receives, in one
// call (the envelope, EggAI's retry metadata, the attempt number, the
// previous error). The dispatcher calls it once per entry.
//
// Thread-safe: a pure function.
#ifndef REDRIVE_DAEMON_DELIVERY_DECODER_H_
#define REDRIVE_DAEMON_DELIVERY_DECODER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/stream_entry.h"
#include "redrive/v1/broker.pb.h"

namespace redrive {

struct DecodedDelivery {
  // Payload, content type, headers, fields, original id, previous error;
  // the dispatcher adds ids, channel, stream, attempt and lease.
  v1::Delivery message;
  uint32_t attempt = 1;
  // Set when the entry was unreadable and is delivered as raw bytes
  // (`lenient` only): why.
  std::string unreadable;
};

// Decodes `entry` for delivery. Poison (IsPoison: an unusable envelope or
// retry metadata) is returned as its error status unless `lenient` (an
// auto-ack handler has no dead-letter queue), which delivers the raw bytes;
// so is any other unreadable entry.
absl::StatusOr<DecodedDelivery> DecodeDelivery(const StreamEntry& entry, bool lenient);
// The same into `out`, which is cleared first: a caller decoding many
// entries reuses one DecodedDelivery (its message keeps its allocations).
// `out` is unspecified when the status is not OK.
absl::Status DecodeDeliveryInto(const StreamEntry& entry, bool lenient, DecodedDelivery& out);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_DELIVERY_DECODER_H_
