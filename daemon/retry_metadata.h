// Retry and dead-letter metadata inside a `__data__` value (R-C3, R-C4, R-D5,
// R-D6), wire-compatible with EggAI 0.3.x's PendingReclaimer rewrite
// (docs/eggai-compat.md, vectors tests/data/vectors/eggai-retry-metadata.json)
// and written with byte-length headers (envelope.h).
//
// Where the metadata lives (its "carrier") depends only on the body:
//   - A body that is a JSON object (as Python's json.loads reads it, see
//     PythonCompactJson) carries it IN THE BODY, as EggAI does:
//       "_retry_count":          decimal STRING, failed attempts so far
//                                ("1" after the first failure);
//       "_original_message_id":  the main-stream entry id, first wins.
//     Envelope headers are not metadata for such bodies: they are ignored when
//     reading and re-emitted unchanged when writing.
//   - Any other body (JSON that is not an object, not JSON, not UTF-8, empty)
//     is a legal payload, never poison: its bytes are never touched and the
//     metadata travels in envelope headers:
//       "x-redrive-attempt":     the same number as _retry_count (failed
//                                attempts so far; the next delivery is
//                                attempt value + 1), decimal;
//       "x-redrive-original-id": the main-stream entry id, first wins.
// Both carriers mean the same thing, so callers only see RetryMetadata.
//
// Poison (R-D6) is reported as absl::StatusCode::kDataLoss, and only for:
//   - an envelope that does not decode (DecodeDataValue error: magic right but
//     lengths/offsets inconsistent with no tolerant reading, or a version != 1);
//   - metadata that is PRESENT but unusable:
//       _retry_count that is not a decimal integer (a string matching
//       -?[0-9]+ or a JSON integer; floats, booleans, null, " 1", "+1", "abc"
//       are unusable), is negative, or is absurd (> kMaxRetryCount);
//       _original_message_id that is not a string holding a Redis entry id;
//       an x-redrive-attempt header that is not [0-9]+ within
//       [0, kMaxRetryCount], an x-redrive-original-id header that is not an
//       entry id, or repeated metadata headers that disagree.
//   Every other error code is a caller mistake (kInvalidArgument).
//
// Body rewriting reproduces Python's
//   json.dumps(json.loads(body), separators=(",", ":"))
// byte for byte (see PythonCompactJson), so for ASCII headers the retry
// entries we write are byte-identical to EggAI 0.3.4's (vectors r1, r2, x1,
// x4), and EggAI agents read our retries and dead letters as their own.
//
// All functions are pure, thread-safe and never throw.
#ifndef REDRIVE_DAEMON_RETRY_METADATA_H_
#define REDRIVE_DAEMON_RETRY_METADATA_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "daemon/envelope.h"
#include "daemon/python_json.h"  // PythonCompactJson, kMaxJsonDepth

namespace redrive {

// EggAI's JSON body keys.
inline constexpr absl::string_view kRetryCountKey = "_retry_count";
inline constexpr absl::string_view kOriginalMessageIdKey = "_original_message_id";
// Later EggAI's (PR #277) dead-letter body keys.
inline constexpr absl::string_view kDlqSourceKey = "_dlq_source";
inline constexpr absl::string_view kDlqHandlerKey = "_dlq_handler";
inline constexpr absl::string_view kDlqAtKey = "_dlq_at";
inline constexpr absl::string_view kDlqReasonKey = "_dlq_reason";
inline constexpr absl::string_view kDlqRetriesKey = "_dlq_retries";
inline constexpr absl::string_view kDlqRawB64Key = "_dlq_raw_b64";
// redrive's envelope headers for bodies that are not JSON objects.
inline constexpr absl::string_view kAttemptHeader = "x-redrive-attempt";
inline constexpr absl::string_view kOriginalIdHeader = "x-redrive-original-id";

// A retry count above this is "absurd": poison when read, InvalidArgument
// when asked to write it.
inline constexpr int64_t kMaxRetryCount = 1000000000;

enum class MetadataCarrier {
  kJsonBody,  // _retry_count / _original_message_id in a JSON object body
  kHeaders,   // x-redrive-attempt / x-redrive-original-id envelope headers
};

struct RetryMetadata {
  MetadataCarrier carrier = MetadataCarrier::kHeaders;
  // Failed attempts so far (EggAI's _retry_count); 0 when absent, i.e. the
  // entry has not been retried. The next delivery is attempt retry_count + 1.
  int64_t retry_count = 0;
  // The main-stream entry id recorded at the first retry; empty when absent.
  std::string original_id;
};

struct RetryEntry {
  DecodedEntry entry;
  RetryMetadata metadata;
};

// True iff `status` reports poison (R-D6), i.e. its code is kDataLoss.
bool IsPoison(const absl::Status& status);

// Reads the retry metadata of a decoded `__data__` value (see the carrier
// rules above). A kFields entry (no `__data__`) is InvalidArgument: there is
// no value to carry metadata. DataLoss (poison) with the reason, e.g.
// "poison: _retry_count \"abc\" is not a decimal integer".
absl::StatusOr<RetryMetadata> ReadRetryMetadata(const DecodedEntry& entry);

// DecodeDataValue + ReadRetryMetadata. A value that does not decode is poison:
// DataLoss "poison: corrupt envelope: <decoder message>".
absl::StatusOr<RetryEntry> ReadRetryEntry(absl::string_view data_value);

// The `__data__` value of the next retry of `entry`, which was read from the
// stream entry `entry_id` (the id recorded as original id unless one is
// already present: first wins), now carrying `new_retry_count`.
//   JSON object body: "_retry_count" := new count as a string (updated in
//     place, or appended), then "_original_message_id" appended if absent;
//     the body re-serialised as PythonCompactJson does; headers unchanged.
//   Other bodies: the body bytes unchanged; the first x-redrive-attempt and
//     x-redrive-original-id headers replaced in place (later duplicates
//     dropped), appended in that order when absent; other headers kept in
//     order.
// Always written as BinaryMessageFormatV1 with byte lengths (EncodeBinaryV1),
// whatever the input format: a kRaw plain-JSON value (vector x4) becomes a
// zero-header envelope, exactly as EggAI writes it; a kRaw non-JSON value
// becomes an envelope whose only headers are the metadata (FastStream then
// delivers the same body bytes it delivered before); a kLegacyJson value keeps
// its headers.
// Errors: InvalidArgument when entry_id is not an entry id, new_retry_count is
// outside [0, kMaxRetryCount], or entry is kFields; DataLoss (poison) when the
// entry's existing metadata is poison or the metadata headers cannot be added
// (65535 headers already).
absl::StatusOr<std::string> WriteRetryDataValue(const DecodedEntry& entry,
                                                absl::string_view entry_id,
                                                int64_t new_retry_count);

// The body a client sees for an entry whose JSON object body carries EggAI's
// retry keys: the body without "_retry_count" and "_original_message_id"
// (their values travel in Delivery.attempt / original_entry_id), printed as
// PythonCompactJson does. nullopt when the body is not a JSON object or has
// neither key (deliver it unchanged).
std::optional<std::string> StripRetryMetadataKeys(absl::string_view body);

// The JSON object `body` without the top-level `keys`, printed as
// PythonCompactJson does; nullopt when the body is not a JSON object or has
// none of them.
std::optional<std::string> StripBodyKeys(absl::string_view body,
                                         absl::Span<const absl::string_view> keys);

// Provenance for a dead letter (R-D5), in EggAI's body keys.
struct DeadLetterInfo {
  std::string source;   // _dlq_source: the channel (not the retry stream)
  std::string handler;  // _dlq_handler: the handler id
  absl::Time at;        // _dlq_at: see FormatDeadLetterTime
  std::string reason;   // _dlq_reason: max_retries | poison | terminated | ...
  int64_t retries = 0;  // _dlq_retries: retries made, written as a string
};

// "YYYY-MM-DDTHH:MM:SS.mmm+00:00" in UTC, sub-milliseconds truncated, e.g.
// "2023-11-14T22:13:20.123+00:00": exactly what EggAI writes (Python's
// isoformat(timespec="milliseconds")), which every Python fromisoformat reads.
std::string FormatDeadLetterTime(absl::Time at);

// The `__data__` value of the dead letter for `entry` (read from `entry_id`),
// mirroring later EggAI's _stamp_dead_letter after its retry rewrite. The JSON
// object body gets, in this order:
//   "_retry_count" := "0" (in place or appended: a DLQ consumer starts with a
//   fresh budget; the retries made are in _dlq_retries),
//   "_original_message_id" := entry_id if absent,
//   "_dlq_source", "_dlq_handler", "_dlq_at" if absent (the first
//   dead-lettering wins),
//   "_dlq_reason", "_dlq_retries" := always (the latest hop wins),
// re-serialised as PythonCompactJson does; headers unchanged.
// FailedPrecondition when the body is not a JSON object (keep such a value
// as it is and record the provenance elsewhere); DataLoss when its metadata is
// poison (use WritePoisonDeadLetterDataValue); InvalidArgument as
// WriteRetryDataValue, or when info.retries is outside [0, kMaxRetryCount].
absl::StatusOr<std::string> WriteDeadLetterDataValue(const DecodedEntry& entry,
                                                     absl::string_view entry_id,
                                                     const DeadLetterInfo& info);

// The JSON body of a poison dead letter, preserving the raw `__data__` bytes,
// as later EggAI's _poison_body builds it (compact, keys in this order):
//   {"_original_message_id": entry_id, "_dlq_raw_b64": base64(raw_value)
//    (standard alphabet, padded), "_dlq_source", "_dlq_handler", "_dlq_at",
//    "_dlq_reason", "_dlq_retries", "_retry_count": "0"}
// InvalidArgument as WriteDeadLetterDataValue.
absl::StatusOr<std::string> PoisonDeadLetterBody(absl::string_view raw_value,
                                                 absl::string_view entry_id,
                                                 const DeadLetterInfo& info);

// The `__data__` value of a poison dead letter: PoisonDeadLetterBody in a
// BinaryMessageFormatV1 envelope that keeps the raw value's headers when it
// decodes (the poison was in its metadata: correlation id, traceparent ...
// survive) and has none otherwise. Readable by FastStream, EggAI and
// ReadRetryEntry (a JSON object body with _retry_count "0").
absl::StatusOr<std::string> WritePoisonDeadLetterDataValue(absl::string_view raw_value,
                                                           absl::string_view entry_id,
                                                           const DeadLetterInfo& info);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_RETRY_METADATA_H_
