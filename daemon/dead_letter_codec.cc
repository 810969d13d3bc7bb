#include "daemon/dead_letter_codec.h"

#include <algorithm>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "daemon/keys.h"
#include "daemon/retry_fields.h"
#include "daemon/retry_metadata.h"
#include "nlohmann/json.hpp"
#include "redrive/v1/broker.pb.h"

namespace redrive {
namespace {

using Json = nlohmann::json;

// Keys EggAI and redrive add to a JSON body; never part of the message.
constexpr absl::string_view kBookkeepingKeys[] = {
    kRetryCountKey, kOriginalMessageIdKey, kDlqSourceKey,  kDlqHandlerKey,
    kDlqAtKey,      kDlqReasonKey,         kDlqRetriesKey, kDlqRawB64Key};
constexpr absl::string_view kDlqKeys[] = {kDlqSourceKey, kDlqHandlerKey, kDlqAtKey,
                                          kDlqReasonKey, kDlqRetriesKey, kDlqRawB64Key};

const std::string* FindField(const FieldList& fields, absl::string_view name) {
  for (const auto& [n, v] : fields) {
    if (n == name) return &v;
  }
  return nullptr;
}

int64_t FieldInt(const FieldList& fields, absl::string_view name, int64_t fallback) {
  const std::string* v = FindField(fields, name);
  int64_t n = 0;
  if (v == nullptr || !absl::SimpleAtoi(*v, &n)) return fallback;
  return n;
}

std::string JsonString(const Json& object, absl::string_view key) {
  auto it = object.find(std::string(key));
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// _retry_count / _dlq_retries: a decimal string or an integer; -1 if absent.
int64_t JsonCount(const Json& object, absl::string_view key) {
  auto it = object.find(std::string(key));
  if (it == object.end()) return -1;
  if (it->is_number_integer()) return it->get<int64_t>();
  int64_t n = 0;
  if (it->is_string() && absl::SimpleAtoi(it->get<std::string>(), &n)) return n;
  return -1;
}

// The `__data__` body as a JSON object, when it is one.
std::optional<Json> BodyObject(const DecodedEntry& decoded) {
  if (decoded.format == EntryFormat::kFields) return std::nullopt;
  Json j = Json::parse(decoded.body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

// Decodes `__data__` (or the field map) leniently: an undecodable value is
// a raw body.
DecodedEntry DecodeLenient(const StreamEntry& entry) {
  const StreamEntry plain = WithoutRedriveFields(entry);
  absl::StatusOr<DecodedEntry> decoded = DecodeStreamEntry(plain.fields);
  if (decoded.ok()) return *std::move(decoded);
  DecodedEntry raw;
  raw.format = EntryFormat::kRaw;
  if (const std::string* d = FindField(entry.fields, kDataField)) raw.body = *d;
  return raw;
}

HeaderList WithoutRedriveHeaders(const HeaderList& headers) {
  HeaderList out;
  for (const auto& h : headers) {
    if (!absl::StartsWith(h.first, kRedriveFieldPrefix)) out.push_back(h);
  }
  return out;
}

void FillHistory(absl::string_view text, v1::DeadLetter& out) {
  Json list = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!list.is_array()) return;
  for (const Json& r : list) {
    if (!r.is_object()) continue;
    v1::AttemptRecord* a = out.add_history();
    auto num = [&](const char* key) -> int64_t {
      auto it = r.find(key);
      return it != r.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
    };
    a->set_attempt(static_cast<uint32_t>(std::clamp<int64_t>(num("attempt"), 0, UINT32_MAX)));
    a->set_unix_ms(num("at_ms"));
    a->set_outcome(JsonString(r, "outcome"));
    a->set_error(JsonString(r, "error"));
    a->set_error_code(JsonString(r, "error_code"));
    a->set_consumer(JsonString(r, "consumer"));
  }
}

}  // namespace

int64_t EntryIdMillis(absl::string_view id) {
  const size_t dash = id.find('-');
  int64_t ms = 0;
  if (!absl::SimpleAtoi(id.substr(0, dash), &ms)) return 0;
  return ms;
}

v1::DeadLetter DecodeDeadLetter(const StreamEntry& entry, size_t payload_limit,
                                uint32_t max_redrives) {
  v1::DeadLetter out;
  out.set_entry_id(entry.id);
  const FieldList& f = entry.fields;
  const bool redrive_made = FindField(f, kReasonField) != nullptr;
  // redrive's provenance is in fields: the body is needed only for EggAI's
  // keys or for the payload.
  const bool need_body = !redrive_made || payload_limit > 0;
  DecodedEntry decoded = need_body ? DecodeLenient(entry) : DecodedEntry{};
  const std::optional<Json> body = need_body ? BodyObject(decoded) : std::nullopt;
  out.set_eggai_format(!redrive_made);
  out.set_dead_lettered_unix_ms(EntryIdMillis(entry.id));
  if (redrive_made) {
    out.set_reason(*FindField(f, kReasonField));
    if (const std::string* v = FindField(f, kChannelField)) out.set_source_channel(*v);
    if (const std::string* v = FindField(f, kHandlerField)) out.set_handler_id(*v);
    out.set_attempts(
        static_cast<uint32_t>(std::clamp<int64_t>(FieldInt(f, kAttemptsField, 0), 0, UINT32_MAX)));
    if (const std::string* v = FindField(f, kLastErrorField)) out.set_last_error(*v);
    if (const std::string* v = FindField(f, kLastErrorCodeField)) out.set_last_error_code(*v);
    out.set_first_failure_unix_ms(FieldInt(f, kFirstFailureField, 0));
    if (const std::string* v = FindField(f, kOriginalIdField)) out.set_original_entry_id(*v);
    if (const std::string* v = FindField(f, kHistoryField)) FillHistory(*v, out);
  } else if (body.has_value()) {
    // EggAI: _dlq_* keys (PR #277), or only its retry metadata (before).
    const std::string reason = JsonString(*body, kDlqReasonKey);
    out.set_reason(reason.empty() ? "max_retries" : reason);
    out.set_source_channel(JsonString(*body, kDlqSourceKey));
    out.set_handler_id(JsonString(*body, kDlqHandlerKey));
    int64_t retries = JsonCount(*body, kDlqRetriesKey);
    if (retries < 0) retries = JsonCount(*body, kRetryCountKey);
    out.set_attempts(static_cast<uint32_t>(std::clamp<int64_t>(retries + 1, 1, UINT32_MAX)));
    out.set_original_entry_id(JsonString(*body, kOriginalMessageIdKey));
  } else {
    out.set_reason("max_retries");
    out.set_attempts(1);
  }
  out.set_redrive_count(
      static_cast<uint32_t>(std::clamp<int64_t>(FieldInt(f, kRedrivesField, 0), 0, UINT32_MAX)));
  out.set_quarantined(out.redrive_count() >= max_redrives);
  if (payload_limit == 0) return out;

  // The payload as the handler saw it.
  std::string raw_b64 = body.has_value() ? JsonString(*body, kDlqRawB64Key) : std::string();
  std::string raw;
  if (!raw_b64.empty() && absl::Base64Unescape(raw_b64, &raw)) {
    decoded.body = std::move(raw);
  } else if (std::optional<std::string> stripped = StripBodyKeys(decoded.body, kBookkeepingKeys)) {
    decoded.body = *std::move(stripped);
  }
  v1::Delivery message;
  FillMessage(std::move(decoded), message);
  std::string* payload = message.mutable_payload();
  out.set_payload_size(payload->size());
  if (payload->size() > payload_limit) {
    payload->resize(payload_limit);
    out.set_payload_truncated(true);
  }
  out.set_payload(std::move(*payload));
  for (const v1::Header& h : message.headers()) {
    if (!absl::StartsWith(h.key(), kRedriveFieldPrefix)) *out.add_headers() = h;
  }
  out.set_content_type(message.content_type());
  return out;
}

absl::StatusOr<FieldList> RedriveFields(const StreamEntry& dead_letter, bool to_handler_retry,
                                        bool reset_attempts) {
  return RedriveFields(dead_letter, DecodeDeadLetter(dead_letter, 0, UINT32_MAX), to_handler_retry,
                       reset_attempts);
}

absl::StatusOr<FieldList> RedriveFields(const StreamEntry& dead_letter, const v1::DeadLetter& info,
                                        bool to_handler_retry, bool reset_attempts) {
  const FieldList& f = dead_letter.fields;
  if (f.size() > kMaxRedriveFields) {
    return absl::InvalidArgumentError(absl::StrCat("dead letter ", dead_letter.id, " has ",
                                                   f.size(), " fields; at most ", kMaxRedriveFields,
                                                   " can be redriven"));
  }
  FieldList out;
  const std::string* data = FindField(f, kDataField);
  const std::string original_id =
      IsValidEntryId(info.original_entry_id()) ? info.original_entry_id() : dead_letter.id;
  const int64_t count = reset_attempts ? 0 : std::max<uint32_t>(info.attempts(), 1);
  if (data != nullptr && !data->empty()) {
    absl::StatusOr<DecodedEntry> decoded = DecodeDataValue(*data);
    if (!decoded.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dead letter ", dead_letter.id, " does not decode: ", decoded.status().message()));
    }
    const std::optional<Json> body = BodyObject(*decoded);
    const std::string raw_b64 = body.has_value() ? JsonString(*body, kDlqRawB64Key) : "";
    std::string value;
    if (!raw_b64.empty()) {
      // Poison: its own bytes again (decoders may have changed since).
      if (!absl::Base64Unescape(raw_b64, &value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("dead letter ", dead_letter.id, ": _dlq_raw_b64 is not base64"));
      }
    } else {
      if (std::optional<std::string> stripped = StripBodyKeys(
              decoded->body, to_handler_retry
                                 ? absl::Span<const absl::string_view>(kDlqKeys)
                                 : absl::Span<const absl::string_view>(kBookkeepingKeys))) {
        decoded->body = *std::move(stripped);
      }
      if (to_handler_retry) {
        absl::StatusOr<std::string> v = WriteRetryDataValue(*decoded, original_id, count);
        if (!v.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "dead letter ", dead_letter.id, " cannot be rewritten: ", v.status().message()));
        }
        value = *std::move(v);
      } else {
        absl::StatusOr<std::string> v =
            EncodeBinaryV1(WithoutRedriveHeaders(decoded->headers), decoded->body);
        if (!v.ok()) return absl::InvalidArgumentError(v.status().message());
        value = *std::move(v);
      }
    }
    out.emplace_back(std::string(kDataField), std::move(value));
    for (const auto& [name, v] : f) {
      if (name != kDataField && !absl::StartsWith(name, kRedriveFieldPrefix)) {
        out.emplace_back(name, v);
      }
    }
  } else {
    for (const auto& [name, v] : f) {
      if (!absl::StartsWith(name, kRedriveFieldPrefix)) out.emplace_back(name, v);
    }
    if (to_handler_retry) {
      out.emplace_back(std::string(kAttemptField), absl::StrCat(count));
      out.emplace_back(std::string(kOriginalIdField), original_id);
    }
  }
  if (to_handler_retry) {
    for (absl::string_view field :
         {kLastErrorField, kLastErrorCodeField, kFirstFailureField, kHistoryField}) {
      if (const std::string* v = FindField(f, field)) out.emplace_back(std::string(field), *v);
    }
  }
  out.emplace_back(std::string(kRedrivesField), absl::StrCat(info.redrive_count() + 1));
  return out;
}

}  // namespace redrive
