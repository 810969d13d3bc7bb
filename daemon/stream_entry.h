// Stream entries as read from Redis, and their conversion into the payload
// part of a v1::Delivery via the envelope codec (R-B3, R-C3, R-G4).
//
// Thread-safe: pure functions.
#ifndef REDRIVE_DAEMON_STREAM_ENTRY_H_
#define REDRIVE_DAEMON_STREAM_ENTRY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/envelope.h"
#include "daemon/redis/reply.h"
#include "redrive/v1/broker.pb.h"

namespace redrive {

struct StreamEntry {
  std::string id;
  FieldList fields;
  // True when Redis returned the id with no fields (deleted while pending).
  bool deleted = false;
};

// Parses the entry list of an XRANGE / XREADGROUP / XAUTOCLAIM reply:
// [[id, [field, value, ...] | nil], ...]. INTERNAL on a malformed reply.
absl::StatusOr<std::vector<StreamEntry>> ParseEntryList(const RedisReply& list);
// The same, moving the strings out of `list` (the hot path).
absl::StatusOr<std::vector<StreamEntry>> ParseEntryList(RedisReply&& list);

// Parses an XREADGROUP / XREAD reply [[stream, entries], ...] (nil = none)
// into the entries of `stream` (other streams' entries are ignored).
absl::StatusOr<std::vector<StreamEntry>> ParseReadReply(const RedisReply& reply,
                                                        absl::string_view stream);
absl::StatusOr<std::vector<StreamEntry>> ParseReadReply(RedisReply&& reply,
                                                        absl::string_view stream);

// Fills the message part of `delivery` from `entry`: payload, headers (the
// application headers; correlation_id, content-type and the trace context
// go to their own fields), content type, correlation id, trace context and
// source format. A plain field map (no `__data__`) is delivered in `fields`
// and, when every name and value is UTF-8, as a JSON object payload.
// Returns the decoder's error (DataLoss/Unimplemented) for a corrupt
// envelope; `delivery` then holds the raw `__data__` bytes as payload.
absl::Status FillMessage(const StreamEntry& entry, v1::Delivery& delivery);
// The same from an entry already decoded (DecodeStreamEntry), moving from it.
void FillMessage(DecodedEntry&& decoded, v1::Delivery& delivery);

// The traceparent `entry` carries, as FillMessage reads it (the last
// `traceparent` header, else an EggAI JSON body's "traceparent"); "" when it
// has none or cannot be decoded. For log lines: it decodes the envelope.
std::string TraceparentOf(const StreamEntry& entry);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_STREAM_ENTRY_H_
