#include "daemon/retry_metadata.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "daemon/keys.h"
#include "daemon/python_json.h"

namespace redrive {
namespace {

// A quoted decimal literal, e.g. "\"3\"" (digits need no escaping).
std::string QuotedDecimal(int64_t n) { return absl::StrCat("\"", n, "\""); }

absl::Status Poison(absl::string_view reason) {
  return absl::DataLossError(absl::StrCat("poison: ", reason));
}

// For messages: at most 64 bytes of `s`, C-escaped.
std::string Shown(absl::string_view s) {
  constexpr size_t kMax = 64;
  if (s.size() <= kMax) return absl::StrCat("\"", absl::CHexEscape(s), "\"");
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, kMax)), "\"...");
}

enum class CountError { kNone, kNotDecimal, kNegative, kAbsurd };

const char* CountReason(CountError e) {
  switch (e) {
    case CountError::kNone:
      break;
    case CountError::kNotDecimal:
      return "is not a decimal integer";
    case CountError::kNegative:
      return "is negative";
    case CountError::kAbsurd:
      return "is absurd (> 1000000000)";
  }
  return "";
}

// [0-9]+ (or -?[0-9]+ when allow_sign; "-0" is 0) within [0, kMaxRetryCount].
CountError ParseCount(absl::string_view s, bool allow_sign, int64_t* out) {
  const bool negative = allow_sign && !s.empty() && s.front() == '-';
  if (negative) s.remove_prefix(1);
  if (s.empty() || s.find_first_not_of("0123456789") != absl::string_view::npos) {
    return CountError::kNotDecimal;
  }
  const size_t first = s.find_first_not_of('0');
  *out = 0;
  if (first == absl::string_view::npos) return CountError::kNone;  // all zeros
  if (negative) return CountError::kNegative;
  for (char c : s.substr(first)) {
    *out = *out * 10 + (c - '0');
    if (*out > kMaxRetryCount) return CountError::kAbsurd;
  }
  return CountError::kNone;
}

// For messages: JSON text (printable ASCII) clipped to 64 bytes.
std::string Clipped(absl::string_view json_text) {
  constexpr size_t kMax = 64;
  if (json_text.size() <= kMax) return std::string(json_text);
  return absl::StrCat(json_text.substr(0, kMax), "...");
}

absl::StatusOr<RetryMetadata> ReadBodyMetadata(const JsonNode& object) {
  RetryMetadata md;
  md.carrier = MetadataCarrier::kJsonBody;
  if (const JsonNode* count = FindMember(object, kRetryCountKey)) {
    const std::string text = EmitPythonJson(*count);
    // A printed string's content is its value when it is plain printable
    // ASCII, which every decimal is (an escaped digit prints as the digit);
    // a printed JSON integer is its digits.
    absl::string_view digits = text;
    if (text.size() >= 2 && text.front() == '"') digits = digits.substr(1, digits.size() - 2);
    const CountError e = ParseCount(digits, /*allow_sign=*/true, &md.retry_count);
    if (e != CountError::kNone) {
      return Poison(absl::StrCat(kRetryCountKey, " ", Clipped(text), " ", CountReason(e)));
    }
  }
  if (const JsonNode* id = FindMember(object, kOriginalMessageIdKey)) {
    const std::string text = EmitPythonJson(*id);
    const bool quoted = text.size() >= 2 && text.front() == '"';
    const absl::string_view value =
        quoted ? absl::string_view(text).substr(1, text.size() - 2) : absl::string_view();
    if (!quoted || !IsValidEntryId(value)) {
      return Poison(
          absl::StrCat(kOriginalMessageIdKey, " ", Clipped(text), " is not a stream entry id"));
    }
    md.original_id = std::string(value);
  }
  return md;
}

absl::StatusOr<RetryMetadata> ReadHeaderMetadata(const HeaderList& headers) {
  RetryMetadata md;
  md.carrier = MetadataCarrier::kHeaders;
  std::optional<int64_t> count;
  std::optional<std::string> original;
  for (const auto& [key, value] : headers) {
    if (key == kAttemptHeader) {
      int64_t n = 0;
      const CountError e = ParseCount(value, /*allow_sign=*/false, &n);
      if (e != CountError::kNone) {
        return Poison(
            absl::StrCat("header ", kAttemptHeader, " ", Shown(value), " ", CountReason(e)));
      }
      if (count.has_value() && *count != n) {
        return Poison(absl::StrCat("conflicting ", kAttemptHeader, " headers"));
      }
      count = n;
    } else if (key == kOriginalIdHeader) {
      if (!IsValidEntryId(value)) {
        return Poison(absl::StrCat("header ", kOriginalIdHeader, " ", Shown(value),
                                   " is not a stream entry id"));
      }
      if (original.has_value() && *original != value) {
        return Poison(absl::StrCat("conflicting ", kOriginalIdHeader, " headers"));
      }
      original = value;
    }
  }
  md.retry_count = count.value_or(0);
  md.original_id = original.value_or("");
  return md;
}

// Reads the metadata; `object` receives the parsed body when it is a JSON
// object (the carrier is then kJsonBody).
absl::StatusOr<RetryMetadata> ReadMetadata(const DecodedEntry& entry,
                                           std::optional<JsonNode>* object) {
  if (entry.format == EntryFormat::kFields) {
    return absl::InvalidArgumentError("entry has no __data__ value to carry retry metadata");
  }
  *object = ParsePythonJsonObject(entry.body);
  if (object->has_value()) return ReadBodyMetadata(**object);
  return ReadHeaderMetadata(entry.headers);
}

absl::Status CheckWriteArguments(absl::string_view entry_id, int64_t count,
                                 absl::string_view count_name) {
  if (!IsValidEntryId(entry_id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("entry_id ", Shown(entry_id), " is not a stream entry id"));
  }
  if (count < 0 || count > kMaxRetryCount) {
    return absl::InvalidArgumentError(
        absl::StrCat(count_name, " ", count, " is outside [0, ", kMaxRetryCount, "]"));
  }
  return absl::OkStatus();
}

// The _dlq_* stamp on a parsed body (see WriteDeadLetterDataValue).
absl::Status StampDeadLetter(const DeadLetterInfo& info, JsonNode* object) {
  absl::StatusOr<std::string> source = PythonString(info.source);
  absl::StatusOr<std::string> handler = PythonString(info.handler);
  absl::StatusOr<std::string> reason = PythonString(info.reason);
  for (const auto* s : {&source, &handler, &reason}) {
    if (!s->ok()) {
      return absl::InvalidArgumentError(absl::StrCat("dead-letter info: ", s->status().message()));
    }
  }
  SetDefaultMember(object, kDlqSourceKey, *std::move(source));
  SetDefaultMember(object, kDlqHandlerKey, *std::move(handler));
  SetDefaultMember(object, kDlqAtKey, absl::StrCat("\"", FormatDeadLetterTime(info.at), "\""));
  SetMember(object, kDlqReasonKey, *std::move(reason));
  SetMember(object, kDlqRetriesKey, QuotedDecimal(info.retries));
  return absl::OkStatus();
}

}  // namespace

bool IsPoison(const absl::Status& status) { return status.code() == absl::StatusCode::kDataLoss; }

absl::StatusOr<RetryMetadata> ReadRetryMetadata(const DecodedEntry& entry) {
  std::optional<JsonNode> object;
  return ReadMetadata(entry, &object);
}

std::optional<std::string> StripRetryMetadataKeys(absl::string_view body) {
  static constexpr absl::string_view kKeys[] = {kRetryCountKey, kOriginalMessageIdKey};
  return StripBodyKeys(body, kKeys);
}

std::optional<std::string> StripBodyKeys(absl::string_view body,
                                         absl::Span<const absl::string_view> keys) {
  std::optional<JsonNode> object = ParsePythonJsonObject(body);
  if (!object.has_value() || !RemoveMembers(&*object, keys)) return std::nullopt;
  return EmitPythonJson(*object);
}

absl::StatusOr<RetryEntry> ReadRetryEntry(absl::string_view data_value) {
  absl::StatusOr<DecodedEntry> decoded = DecodeDataValue(data_value);
  if (!decoded.ok()) {
    return Poison(absl::StrCat("corrupt envelope: ", decoded.status().message()));
  }
  absl::StatusOr<RetryMetadata> md = ReadRetryMetadata(*decoded);
  if (!md.ok()) return md.status();
  return RetryEntry{*std::move(decoded), *std::move(md)};
}

absl::StatusOr<std::string> WriteRetryDataValue(const DecodedEntry& entry,
                                                absl::string_view entry_id,
                                                int64_t new_retry_count) {
  absl::Status s = CheckWriteArguments(entry_id, new_retry_count, "new_retry_count");
  if (!s.ok()) return s;
  std::optional<JsonNode> object;
  absl::StatusOr<RetryMetadata> md = ReadMetadata(entry, &object);
  if (!md.ok()) return md.status();

  if (object.has_value()) {
    // EggAI: body["_retry_count"] = str(n); body.setdefault(
    // "_original_message_id", msg_id); json.dumps(body, separators=(",", ":"))
    SetMember(&*object, kRetryCountKey, QuotedDecimal(new_retry_count));
    SetDefaultMember(&*object, kOriginalMessageIdKey, absl::StrCat("\"", entry_id, "\""));
    absl::StatusOr<std::string> value = EncodeBinaryV1(entry.headers, EmitPythonJson(*object));
    if (!value.ok()) return Poison(absl::StrCat("cannot re-encode: ", value.status().message()));
    return value;
  }

  const std::string original = md->original_id.empty() ? std::string(entry_id) : md->original_id;
  HeaderList headers;
  headers.reserve(entry.headers.size() + 2);
  bool wrote_attempt = false;
  bool wrote_original = false;
  for (const auto& [key, value] : entry.headers) {
    if (key == kAttemptHeader) {
      if (!wrote_attempt) headers.emplace_back(key, absl::StrCat(new_retry_count));
      wrote_attempt = true;
    } else if (key == kOriginalIdHeader) {
      if (!wrote_original) headers.emplace_back(key, original);
      wrote_original = true;
    } else {
      headers.emplace_back(key, value);
    }
  }
  if (!wrote_attempt) headers.emplace_back(kAttemptHeader, absl::StrCat(new_retry_count));
  if (!wrote_original) headers.emplace_back(kOriginalIdHeader, original);
  absl::StatusOr<std::string> value = EncodeBinaryV1(headers, entry.body);
  if (!value.ok()) {
    return Poison(absl::StrCat("cannot add retry metadata headers: ", value.status().message()));
  }
  return value;
}

std::string FormatDeadLetterTime(absl::Time at) {
  // As EggAI writes it: datetime.isoformat(timespec="milliseconds") in UTC.
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3S+00:00", at, absl::UTCTimeZone());
}

absl::StatusOr<std::string> WriteDeadLetterDataValue(const DecodedEntry& entry,
                                                     absl::string_view entry_id,
                                                     const DeadLetterInfo& info) {
  absl::Status s = CheckWriteArguments(entry_id, info.retries, "retries");
  if (!s.ok()) return s;
  std::optional<JsonNode> object;
  absl::StatusOr<RetryMetadata> md = ReadMetadata(entry, &object);
  if (!md.ok()) return md.status();
  if (!object.has_value()) {
    return absl::FailedPreconditionError("body is not a JSON object: it cannot carry _dlq_* keys");
  }
  SetMember(&*object, kRetryCountKey, QuotedDecimal(0));
  SetDefaultMember(&*object, kOriginalMessageIdKey, absl::StrCat("\"", entry_id, "\""));
  s = StampDeadLetter(info, &*object);
  if (!s.ok()) return s;
  absl::StatusOr<std::string> value = EncodeBinaryV1(entry.headers, EmitPythonJson(*object));
  if (!value.ok()) return Poison(absl::StrCat("cannot re-encode: ", value.status().message()));
  return value;
}

absl::StatusOr<std::string> PoisonDeadLetterBody(absl::string_view raw_value,
                                                 absl::string_view entry_id,
                                                 const DeadLetterInfo& info) {
  absl::Status s = CheckWriteArguments(entry_id, info.retries, "retries");
  if (!s.ok()) return s;
  JsonNode object;
  object.kind = JsonNode::Kind::kObject;
  SetMember(&object, kOriginalMessageIdKey, absl::StrCat("\"", entry_id, "\""));
  std::string b64;
  absl::Base64Escape(raw_value, &b64);
  SetMember(&object, kDlqRawB64Key, absl::StrCat("\"", b64, "\""));
  s = StampDeadLetter(info, &object);
  if (!s.ok()) return s;
  SetMember(&object, kRetryCountKey, QuotedDecimal(0));
  return EmitPythonJson(object);
}

absl::StatusOr<std::string> WritePoisonDeadLetterDataValue(absl::string_view raw_value,
                                                           absl::string_view entry_id,
                                                           const DeadLetterInfo& info) {
  absl::StatusOr<std::string> body = PoisonDeadLetterBody(raw_value, entry_id, info);
  if (!body.ok()) return body.status();
  absl::StatusOr<DecodedEntry> decoded = DecodeDataValue(raw_value);
  if (decoded.ok()) {
    absl::StatusOr<std::string> value = EncodeBinaryV1(decoded->headers, *body);
    if (value.ok()) return value;
  }
  return EncodeBinaryV1({}, *body);
}

}  // namespace redrive
