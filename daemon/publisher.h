// Publisher: validation of Publish/PublishBatch requests, construction of
// EggAI/FastStream-compatible stream entries and the XADD that writes them
// (R-F1, R-C3).
//
// An entry is one field `__data__` holding BinaryMessageFormatV1 with byte
// lengths. Header order follows FastStream: correlation_id, content-type
// (when set), reply_to (when set), the application headers in request order,
// then traceparent / tracestate (when set: the message's own trace context,
// else the one the call carried as gRPC metadata; EffectiveTrace).
//
// Thread-safe: const methods only, plus the UUID source which must be
// thread-safe itself.
#ifndef REDRIVE_DAEMON_PUBLISHER_H_
#define REDRIVE_DAEMON_PUBLISHER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/config.h"
#include "daemon/keys.h"
#include "daemon/redis/connection.h"
#include "daemon/trace_context.h"
#include "redrive/v1/broker.pb.h"

namespace redrive {

inline constexpr size_t kMaxShortField = 256;  // correlation_id, content_type, ...
inline constexpr uint64_t kMaxStreamLength = 1'000'000'000;

// Entries validated and encoded, ready to write.
struct PreparedPublish {
  std::string stream;
  uint64_t max_len = 0;
  std::vector<std::string> envelopes;  // `__data__` values
  std::vector<std::string> correlation_ids;
};

// The trace context `message` is stored with: its own when it has a
// traceparent (an explicit message trace context always wins), else
// `call_trace` (from the call's metadata, TraceFromMetadata) when that has
// one, else its own (a tracestate alone, or nothing).
const v1::TraceContext& EffectiveTrace(const v1::OutgoingMessage& message,
                                       const v1::TraceContext& call_trace);

// A random (version 4) UUID in canonical form. Thread-safe.
std::string RandomUuid();

class Publisher {
 public:
  using UuidSource = std::function<std::string()>;

  Publisher(PublishLimits limits, KeyStyle style, UuidSource uuid = RandomUuid);

  // INVALID_ARGUMENT (bad names, reserved or malformed headers, bad trace
  // context, max_len out of range, empty batch) or RESOURCE_EXHAUSTED (payload,
  // header count or header bytes over the limits, batch too large); the
  // message names the offending field, e.g. "messages[3].headers[0].key".
  // `call_trace`: the trace context of the call's gRPC metadata
  // (TraceFromMetadata), stored with each message that has no traceparent of
  // its own (EffectiveTrace).
  absl::StatusOr<PreparedPublish> Prepare(
      const v1::PublishRequest& request,
      const v1::TraceContext& call_trace = v1::TraceContext::default_instance()) const;
  absl::StatusOr<PreparedPublish> Prepare(
      const v1::PublishBatchRequest& request,
      const v1::TraceContext& call_trace = v1::TraceContext::default_instance()) const;

  // Writes the entries: one XADD, or for several one MULTI/EXEC (all or
  // none). Returns the entry ids in order. UNAVAILABLE when Redis does not
  // answer; FAILED_PRECONDITION when the channel key is not a stream.
  absl::StatusOr<std::vector<std::string>> Write(RedisCommander& redis,
                                                 const PreparedPublish& prepared) const;

 private:
  absl::Status ValidateMessage(const v1::OutgoingMessage& message, const std::string& field) const;
  absl::StatusOr<std::string> Encode(const v1::OutgoingMessage& message,
                                     const std::string& correlation_id,
                                     const v1::TraceContext& call_trace) const;
  absl::StatusOr<PreparedPublish> PrepareMessages(
      const std::string& channel, const std::vector<const v1::OutgoingMessage*>& messages,
      uint64_t max_len, bool batch, const v1::TraceContext& call_trace) const;

  const PublishLimits limits_;
  const KeyStyle style_;
  const UuidSource uuid_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_PUBLISHER_H_
