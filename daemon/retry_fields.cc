#include "daemon/retry_fields.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/keys.h"
#include "nlohmann/json.hpp"

namespace redrive {
namespace {

using Json = nlohmann::json;

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

bool IsRedriveField(absl::string_view name) { return absl::StartsWith(name, kRedriveFieldPrefix); }

const std::string* FindField(const FieldList& fields, absl::string_view name) {
  for (const auto& [n, v] : fields) {
    if (n == name) return &v;
  }
  return nullptr;
}

bool ParseDecimal(absl::string_view text, int64_t* out) {
  if (text.empty() || text.size() > 18 ||
      text.find_first_not_of("0123456789") != absl::string_view::npos) {
    return false;
  }
  return absl::SimpleAtoi(text, out);
}

Json RecordJson(const FailureRecord& f) {
  Json j = Json::object();
  j["attempt"] = f.attempt;
  j["at_ms"] = f.at_ms;
  j["outcome"] = f.outcome;
  j["error"] = CutUtf8(f.error, kMaxStoredError);
  j["error_code"] = f.error_code;
  j["consumer"] = f.consumer;
  return j;
}

// `history` (a JSON array, or anything else = none) with `f` appended, the
// oldest records dropped beyond kMaxHistory.
std::string AppendHistory(absl::string_view history, const FailureRecord& f) {
  Json list = Json::parse(history, nullptr, /*allow_exceptions=*/false);
  if (!list.is_array()) list = Json::array();
  list.push_back(RecordJson(f));
  while (list.size() > kMaxHistory) list.erase(list.begin());
  return Dump(list);
}

// The provenance fields shared by retry and dead-letter entries.
void AppendFailureFields(const RetryState* state, const FailureRecord& f, FieldList& out) {
  out.emplace_back(std::string(kLastErrorField), CutUtf8(f.error, kMaxStoredError));
  out.emplace_back(std::string(kLastErrorCodeField), f.error_code);
  const int64_t first =
      state != nullptr && state->first_failure_ms > 0 ? state->first_failure_ms : f.at_ms;
  out.emplace_back(std::string(kFirstFailureField), absl::StrCat(first));
  out.emplace_back(std::string(kHistoryField),
                   AppendHistory(state != nullptr ? state->history : "", f));
}

// False only when the entry certainly has no retry metadata: no metadata
// header, and a body that names neither EggAI key and has no backslash
// (a JSON key could spell them with \u escapes). Parsing the body as JSON
// is then not needed.
bool MayCarryMetadata(const DecodedEntry& d) {
  for (const auto& [key, value] : d.headers) {
    if (absl::StartsWith(key, kRedriveFieldPrefix)) return true;
  }
  return absl::StrContains(d.body, '\\') || absl::StrContains(d.body, kRetryCountKey) ||
         absl::StrContains(d.body, kOriginalMessageIdKey);
}

}  // namespace

std::string CutUtf8(absl::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  size_t end = max;
  // Step back over continuation bytes to the start of the cut sequence.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end));
}

StreamEntry WithoutRedriveFields(const StreamEntry& entry) {
  StreamEntry out;
  out.id = entry.id;
  out.deleted = entry.deleted;
  for (const auto& [name, value] : entry.fields) {
    if (!IsRedriveField(name)) out.fields.emplace_back(name, value);
  }
  return out;
}

absl::StatusOr<RetryState> ReadRetryState(const StreamEntry& entry) {
  RetryState state;
  const std::string* data = FindField(entry.fields, kDataField);
  state.has_data = data != nullptr && !data->empty();
  if (state.has_data) {
    absl::StatusOr<DecodedEntry> decoded = DecodeDataValue(*data);
    if (!decoded.ok()) {
      return absl::DataLossError(
          absl::StrCat("poison: corrupt envelope: ", decoded.status().message()));
    }
    if (MayCarryMetadata(*decoded)) {
      // (The hot path skips this: a first delivery has no metadata.)
      absl::StatusOr<RetryMetadata> md = ReadRetryMetadata(*decoded);
      if (!md.ok()) return md.status();
      state.retry_count = md->retry_count;
      state.original_id = std::move(md->original_id);
    }
    state.decoded = *std::move(decoded);
  } else {
    const StreamEntry plain = WithoutRedriveFields(entry);
    absl::StatusOr<DecodedEntry> decoded = DecodeStreamEntry(plain.fields);
    if (!decoded.ok()) return decoded.status();  // cannot happen for field maps
    state.decoded = *std::move(decoded);
    if (const std::string* a = FindField(entry.fields, kAttemptField)) {
      if (!ParseDecimal(*a, &state.retry_count) || state.retry_count > kMaxRetryCount) {
        return absl::DataLossError(absl::StrCat("poison: field ", kAttemptField, " \"",
                                                CutUtf8(*a, 64), "\" is not a retry count"));
      }
    }
    if (const std::string* o = FindField(entry.fields, kOriginalIdField)) {
      if (!IsValidEntryId(*o)) {
        return absl::DataLossError(absl::StrCat("poison: field ", kOriginalIdField, " \"",
                                                CutUtf8(*o, 64), "\" is not an entry id"));
      }
      state.original_id = *o;
    }
  }
  if (const std::string* e = FindField(entry.fields, kLastErrorField)) state.last_error = *e;
  if (const std::string* c = FindField(entry.fields, kLastErrorCodeField)) {
    state.last_error_code = *c;
  }
  if (const std::string* t = FindField(entry.fields, kFirstFailureField)) {
    int64_t ms = 0;
    if (ParseDecimal(*t, &ms)) state.first_failure_ms = ms;
  }
  if (const std::string* h = FindField(entry.fields, kHistoryField)) state.history = *h;
  return state;
}

absl::StatusOr<FieldList> RetryEntryFields(const StreamEntry& entry, const RetryState& state,
                                           const FailureRecord& failure) {
  const bool failed = failure.outcome != kReturnedOutcome;
  const int64_t count = state.retry_count + (failed ? 1 : 0);
  FieldList out;
  if (state.has_data) {
    absl::StatusOr<std::string> value = WriteRetryDataValue(state.decoded, entry.id, count);
    if (!value.ok()) return value.status();
    out.emplace_back(std::string(kDataField), *std::move(value));
    // Other producers' extra fields travel along.
    for (const auto& [name, v] : entry.fields) {
      if (!IsRedriveField(name) && name != kDataField) out.emplace_back(name, v);
    }
  } else {
    for (const auto& [name, value] : entry.fields) {
      if (!IsRedriveField(name)) out.emplace_back(name, value);
    }
    out.emplace_back(std::string(kAttemptField), absl::StrCat(count));
    out.emplace_back(std::string(kOriginalIdField),
                     state.original_id.empty() ? entry.id : state.original_id);
  }
  if (const std::string* r = FindField(entry.fields, kRedrivesField)) {
    out.emplace_back(std::string(kRedrivesField), *r);
  }
  if (failed) {
    AppendFailureFields(&state, failure, out);
  } else {
    // Handed back undelivered: the failure record stays as it was.
    for (absl::string_view field :
         {kLastErrorField, kLastErrorCodeField, kFirstFailureField, kHistoryField}) {
      if (const std::string* v = FindField(entry.fields, field)) {
        out.emplace_back(std::string(field), *v);
      }
    }
  }
  return out;
}

FieldList DeadLetterFields(const StreamEntry& entry, const absl::StatusOr<RetryState>& state,
                           const FailureRecord& failure, const DeadLetterContext& context) {
  FieldList out;
  const std::string* data = FindField(entry.fields, kDataField);
  DeadLetterInfo info;
  info.source = context.channel;
  info.handler = context.handler_id;
  info.at = context.at;
  info.reason = context.reason;
  info.retries = failure.attempt > 0 ? failure.attempt - 1 : 0;
  std::string original_id = entry.id;
  if (state.ok() && !state->original_id.empty()) original_id = state->original_id;

  bool wrote_data = false;
  if (data != nullptr && !data->empty()) {
    absl::StatusOr<std::string> value =
        state.ok() ? WriteDeadLetterDataValue(state->decoded, entry.id, info)
                   : WritePoisonDeadLetterDataValue(*data, entry.id, info);
    // A body that cannot carry _dlq_* keys (not a JSON object) keeps its
    // bytes; so does anything that cannot be rewritten.
    out.emplace_back(std::string(kDataField), value.ok() ? *std::move(value) : *data);
    wrote_data = true;
  }
  for (const auto& [name, value] : entry.fields) {
    if (IsRedriveField(name) || (wrote_data && name == kDataField)) continue;
    out.emplace_back(name, value);
  }
  out.emplace_back(std::string(kReasonField), context.reason);
  out.emplace_back(std::string(kChannelField), context.channel);
  out.emplace_back(std::string(kHandlerField), context.handler_id);
  out.emplace_back(std::string(kSourceStreamField), context.source_stream);
  out.emplace_back(std::string(kSourceIdField), entry.id);
  out.emplace_back(std::string(kOriginalIdField), original_id);
  out.emplace_back(std::string(kAttemptsField), absl::StrCat(failure.attempt));
  out.emplace_back(std::string(kDeadLetteredField), absl::StrCat(absl::ToUnixMillis(context.at)));
  if (const std::string* r = FindField(entry.fields, kRedrivesField)) {
    out.emplace_back(std::string(kRedrivesField), *r);
  }
  if (state.ok()) {
    AppendFailureFields(&*state, failure, out);
  } else {
    // A poison entry's own x-redrive-* fields cannot be trusted either;
    // keep its history when it is readable.
    RetryState partial;
    for (const auto& [name, value] : entry.fields) {
      if (name == kHistoryField) partial.history = value;
      if (name == kFirstFailureField) {
        int64_t ms = 0;
        if (ParseDecimal(value, &ms)) partial.first_failure_ms = ms;
      }
    }
    AppendFailureFields(&partial, failure, out);
  }
  return out;
}

std::string EncodeDueMember(const DueMember& member) {
  return absl::StrCat(member.source, "\n", member.entry_id, "\n", Dump(RecordJson(member.failure)));
}

absl::StatusOr<DueMember> DecodeDueMember(absl::string_view member) {
  std::vector<absl::string_view> parts = absl::StrSplit(member, absl::MaxSplits('\n', 2));
  if (parts.size() != 3 || (parts[0] != "0" && parts[0] != "1") || !IsValidEntryId(parts[1])) {
    return absl::InvalidArgumentError("not a redrive due member");
  }
  DueMember out;
  out.source = parts[0] == "1" ? 1 : 0;
  out.entry_id = std::string(parts[1]);
  Json j = Json::parse(parts[2], nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError("due member failure is not an object");
  auto str = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto num = [&](const char* key) -> int64_t {
    auto it = j.find(key);
    return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
  };
  out.failure.attempt = static_cast<uint32_t>(std::max<int64_t>(1, num("attempt")));
  out.failure.at_ms = num("at_ms");
  out.failure.outcome = str("outcome");
  out.failure.error = str("error");
  out.failure.error_code = str("error_code");
  out.failure.consumer = str("consumer");
  return out;
}

}  // namespace redrive
