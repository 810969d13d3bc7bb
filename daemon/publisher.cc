#include "daemon/publisher.h"

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/envelope.h"
#include "daemon/redis/errors.h"
#include "daemon/redis/streams.h"
#include "daemon/trace_context.h"

namespace redrive {
namespace {

constexpr absl::string_view kReservedHeaders[] = {"correlation_id", "content-type", "reply_to",
                                                  "traceparent", "tracestate"};
constexpr size_t kMaxEnvelopeString = 65535;  // u16 length field

// Minimal UTF-8 well-formedness check (protobuf already enforces it for
// proto3 strings on the wire; this guards in-process callers too).
bool IsUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += n;
  }
  return true;
}

absl::Status TooLong(const std::string& field, size_t size, size_t limit) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " is ", size, " bytes; at most ", limit, " allowed"));
}

}  // namespace

std::string RandomUuid() {
  thread_local absl::BitGen gen;
  const uint64_t hi = (absl::Uniform<uint64_t>(gen) & ~0xF000ULL) | 0x4000ULL;
  const uint64_t lo =
      (absl::Uniform<uint64_t>(gen) & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", hi >> 32, (hi >> 16) & 0xFFFF, hi & 0xFFFF,
                         lo >> 48, lo & 0xFFFFFFFFFFFFULL);
}

Publisher::Publisher(PublishLimits limits, KeyStyle style, UuidSource uuid)
    : limits_(limits), style_(style), uuid_(std::move(uuid)) {}

absl::Status Publisher::ValidateMessage(const v1::OutgoingMessage& m,
                                        const std::string& field) const {
  if (m.payload().size() > limits_.max_payload_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(field, ".payload is ", m.payload().size(), " bytes; the limit is ",
                     limits_.max_payload_bytes, " (--max-payload-bytes)"));
  }
  if (static_cast<size_t>(m.headers_size()) > limits_.max_headers) {
    return absl::ResourceExhaustedError(absl::StrCat(field, ".headers has ", m.headers_size(),
                                                     " entries; the limit is ", limits_.max_headers,
                                                     " (--max-headers)"));
  }
  struct Short {
    const char* name;
    const std::string& value;
  };
  for (const Short& s :
       {Short{"content_type", m.content_type()}, Short{"correlation_id", m.correlation_id()},
        Short{"reply_to", m.reply_to()}, Short{"trace.tracestate", m.trace().tracestate()}}) {
    if (s.value.size() > kMaxShortField) {
      return TooLong(absl::StrCat(field, ".", s.name), s.value.size(), kMaxShortField);
    }
    if (!IsUtf8(s.value)) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".", s.name, " is not UTF-8"));
    }
  }
  if (!m.trace().traceparent().empty() && !IsValidTraceparent(m.trace().traceparent())) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".trace.traceparent is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)"));
  }
  size_t header_bytes = 0;
  for (int i = 0; i < m.headers_size(); ++i) {
    const v1::Header& h = m.headers(i);
    const std::string name = absl::StrCat(field, ".headers[", i, "]");
    if (h.key().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ".key is empty"));
    }
    if (h.key().size() > kMaxShortField) {
      return TooLong(absl::StrCat(name, ".key"), h.key().size(), kMaxShortField);
    }
    for (absl::string_view reserved : kReservedHeaders) {
      if (absl::EqualsIgnoreCase(h.key(), reserved)) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ".key '", h.key(), "' is reserved; use the message field"));
      }
    }
    if (!IsUtf8(h.key()) || !IsUtf8(h.value())) {
      return absl::InvalidArgumentError(absl::StrCat(name, " is not UTF-8"));
    }
    if (h.value().size() > kMaxEnvelopeString) {
      return absl::ResourceExhaustedError(absl::StrCat(name, ".value is ", h.value().size(),
                                                       " bytes; the envelope allows ",
                                                       kMaxEnvelopeString));
    }
    header_bytes += h.key().size() + h.value().size();
  }
  if (header_bytes > limits_.max_header_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(field, ".headers total ", header_bytes, " bytes; the limit is ",
                     limits_.max_header_bytes, " (--max-header-bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Publisher::Encode(const v1::OutgoingMessage& m,
                                              const std::string& correlation_id,
                                              const v1::TraceContext& call_trace) const {
  HeaderList headers;
  headers.reserve(static_cast<size_t>(m.headers_size()) + 5);
  headers.emplace_back("correlation_id", correlation_id);
  if (!m.content_type().empty()) headers.emplace_back("content-type", m.content_type());
  if (!m.reply_to().empty()) headers.emplace_back("reply_to", m.reply_to());
  for (const v1::Header& h : m.headers()) headers.emplace_back(h.key(), h.value());
  const v1::TraceContext& trace = EffectiveTrace(m, call_trace);
  if (!trace.traceparent().empty()) headers.emplace_back("traceparent", trace.traceparent());
  if (!trace.tracestate().empty()) headers.emplace_back("tracestate", trace.tracestate());
  return EncodeBinaryV1(headers, m.payload());
}

absl::StatusOr<PreparedPublish> Publisher::PrepareMessages(
    const std::string& channel, const std::vector<const v1::OutgoingMessage*>& messages,
    uint64_t max_len, bool batch, const v1::TraceContext& call_trace) const {
  if (absl::Status s = ValidateChannel(channel); !s.ok()) return s;
  if (max_len > kMaxStreamLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_len ", max_len, " is outside 0..", kMaxStreamLength));
  }
  if (batch) {
    if (messages.empty()) return absl::InvalidArgumentError("messages is empty");
    if (messages.size() > limits_.max_batch_messages) {
      return absl::ResourceExhaustedError(
          absl::StrCat("messages has ", messages.size(), " entries; the limit is ",
                       limits_.max_batch_messages, " (--max-batch-messages)"));
    }
  }
  PreparedPublish out;
  out.stream = StreamKey(channel, style_);
  out.max_len = max_len;
  out.envelopes.reserve(messages.size());
  out.correlation_ids.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    const v1::OutgoingMessage& m = *messages[i];
    const std::string field = batch ? absl::StrCat("messages[", i, "]") : "message";
    if (absl::Status s = ValidateMessage(m, field); !s.ok()) return s;
    std::string correlation_id = m.correlation_id().empty() ? uuid_() : m.correlation_id();
    absl::StatusOr<std::string> envelope = Encode(m, correlation_id, call_trace);
    if (!envelope.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", envelope.status().message()));
    }
    out.envelopes.push_back(*std::move(envelope));
    out.correlation_ids.push_back(std::move(correlation_id));
  }
  return out;
}

absl::StatusOr<PreparedPublish> Publisher::Prepare(const v1::PublishRequest& request,
                                                   const v1::TraceContext& call_trace) const {
  if (absl::Status s = ValidateChannel(request.channel()); !s.ok()) return s;
  if (!request.has_message()) return absl::InvalidArgumentError("message is required");
  return PrepareMessages(request.channel(), {&request.message()}, request.max_len(), false,
                         call_trace);
}

absl::StatusOr<PreparedPublish> Publisher::Prepare(const v1::PublishBatchRequest& request,
                                                   const v1::TraceContext& call_trace) const {
  std::vector<const v1::OutgoingMessage*> messages;
  messages.reserve(static_cast<size_t>(request.messages_size()));
  for (const v1::OutgoingMessage& m : request.messages()) messages.push_back(&m);
  return PrepareMessages(request.channel(), messages, request.max_len(), true, call_trace);
}

const v1::TraceContext& EffectiveTrace(const v1::OutgoingMessage& message,
                                       const v1::TraceContext& call_trace) {
  if (message.trace().traceparent().empty() && !call_trace.traceparent().empty()) {
    return call_trace;
  }
  return message.trace();
}

absl::StatusOr<std::vector<std::string>> Publisher::Write(RedisCommander& redis,
                                                          const PreparedPublish& prepared) const {
  absl::StatusOr<std::vector<std::string>> ids =
      XAdd(redis, prepared.stream, kDataField, prepared.envelopes, prepared.max_len);
  if (RedisErrorOf(ids.status()) == RedisError::kWrongType) {
    return absl::FailedPreconditionError(
        absl::StrCat("key '", prepared.stream, "' exists and is not a stream"));
  }
  return ids;
}

}  // namespace redrive
