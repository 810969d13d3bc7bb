#include "daemon/dead_letters.h"

#include <algorithm>
#include <limits>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "daemon/keys.h"
#include "daemon/redis/scripts.h"
#include "daemon/redis/script_results.h"
#include "daemon/retry_fields.h"
#include "daemon/retry_metadata.h"
#include "nlohmann/json.hpp"
#include "redrive/v1/broker.pb.h"

namespace redrive {
namespace {

using Json = nlohmann::json;

// Keys EggAI and redrive add to a JSON body; never part of the message.
constexpr absl::string_view kBookkeepingKeys[] = {
    kRetryCountKey, kOriginalMessageIdKey, kDlqSourceKey, kDlqHandlerKey,
    kDlqAtKey,      kDlqReasonKey,         kDlqRetriesKey, kDlqRawB64Key};
constexpr absl::string_view kDlqKeys[] = {kDlqSourceKey, kDlqHandlerKey, kDlqAtKey,
                                          kDlqReasonKey, kDlqRetriesKey, kDlqRawB64Key};

// Entries per XRANGE round trip while scanning.
constexpr size_t kScanChunk = 500;

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

absl::Status ScanRange(RedisCommander& redis, const std::string& dlq, std::string start,
                       std::string end, bool newest_first,
                       const std::function<bool(StreamEntry&&)>& each) {
  while (true) {
    const std::string count = absl::StrCat(kScanChunk);
    RedisArgv argv = newest_first ? RedisArgv{"XREVRANGE", dlq, end, start, "COUNT", count}
                                  : RedisArgv{"XRANGE", dlq, start, end, "COUNT", count};
    absl::StatusOr<RedisReply> reply = redis.Command(argv);
    if (!reply.ok()) return reply.status();
    if (reply->is_error()) return reply->ErrorStatus();
    absl::StatusOr<std::vector<StreamEntry>> entries = ParseEntryList(*std::move(reply));
    if (!entries.ok()) return entries.status();
    const size_t n = entries->size();
    std::string last;
    for (StreamEntry& e : *entries) {
      last = e.id;
      if (!each(std::move(e))) return absl::OkStatus();
    }
    if (n < kScanChunk) return absl::OkStatus();
    // Exclusive bounds continue after the last entry seen.
    if (newest_first) {
      end = absl::StrCat("(", last);
    } else {
      start = absl::StrCat("(", last);
    }
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
    out.set_attempts(static_cast<uint32_t>(
        std::clamp<int64_t>(FieldInt(f, kAttemptsField, 0), 0, UINT32_MAX)));
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
  out.set_redrive_count(static_cast<uint32_t>(
      std::clamp<int64_t>(FieldInt(f, kRedrivesField, 0), 0, UINT32_MAX)));
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

absl::Status ValidateFilter(const v1::DeadLetterFilter& filter, absl::string_view field) {
  if (static_cast<size_t>(filter.reasons_size()) > kMaxFilterReasons) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".reasons has ", filter.reasons_size(),
                                                   " entries; at most ", kMaxFilterReasons));
  }
  for (int i = 0; i < filter.reasons_size(); ++i) {
    const std::string& r = filter.reasons(i);
    if (r.empty() || r.size() > kMaxReasonLength) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".reasons[", i, "] must be 1..", kMaxReasonLength, " bytes"));
    }
  }
  if (filter.from_unix_ms() < 0 || filter.to_unix_ms() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, " times must not be negative"));
  }
  if (filter.from_unix_ms() > 0 && filter.to_unix_ms() > 0 &&
      filter.from_unix_ms() >= filter.to_unix_ms()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".from_unix_ms ", filter.from_unix_ms(),
                                                   " is not before to_unix_ms ",
                                                   filter.to_unix_ms()));
  }
  return absl::OkStatus();
}

bool MatchesReasons(const v1::DeadLetter& dead_letter, const v1::DeadLetterFilter& filter) {
  if (filter.reasons().empty()) return true;
  return std::find(filter.reasons().begin(), filter.reasons().end(), dead_letter.reason()) !=
         filter.reasons().end();
}

std::pair<std::string, std::string> FilterRange(const v1::DeadLetterFilter& filter) {
  std::string start = filter.from_unix_ms() > 0 ? absl::StrCat(filter.from_unix_ms(), "-0") : "-";
  std::string end = filter.to_unix_ms() > 0 ? absl::StrCat("(", filter.to_unix_ms(), "-0") : "+";
  return {std::move(start), std::move(end)};
}

absl::StatusOr<FieldList> RedriveFields(const StreamEntry& dead_letter, bool to_handler_retry,
                                        bool reset_attempts) {
  return RedriveFields(dead_letter, DecodeDeadLetter(dead_letter, 0, UINT32_MAX),
                       to_handler_retry, reset_attempts);
}

absl::StatusOr<FieldList> RedriveFields(const StreamEntry& dead_letter,
                                        const v1::DeadLetter& info, bool to_handler_retry,
                                        bool reset_attempts) {
  const FieldList& f = dead_letter.fields;
  if (f.size() > kMaxRedriveFields) {
    return absl::InvalidArgumentError(absl::StrCat("dead letter ", dead_letter.id, " has ",
                                                   f.size(), " fields; at most ",
                                                   kMaxRedriveFields, " can be redriven"));
  }
  FieldList out;
  const std::string* data = FindField(f, kDataField);
  const std::string original_id =
      IsValidEntryId(info.original_entry_id()) ? info.original_entry_id() : dead_letter.id;
  const int64_t count = reset_attempts ? 0 : std::max<uint32_t>(info.attempts(), 1);
  if (data != nullptr && !data->empty()) {
    absl::StatusOr<DecodedEntry> decoded = DecodeDataValue(*data);
    if (!decoded.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("dead letter ", dead_letter.id, " does not decode: ",
                       decoded.status().message()));
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
              decoded->body, to_handler_retry ? absl::Span<const absl::string_view>(kDlqKeys)
                                              : absl::Span<const absl::string_view>(
                                                    kBookkeepingKeys))) {
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

absl::Status ValidateListRequest(const v1::ListDeadLettersRequest& request) {
  if (request.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size ", request.page_size(), " is outside 1..", kMaxPageSize));
  }
  if (request.preview_bytes() > kMaxPreviewBytes) {
    return absl::InvalidArgumentError(absl::StrCat("preview_bytes ", request.preview_bytes(),
                                                   " is over ", kMaxPreviewBytes));
  }
  if (!v1::Order_IsValid(request.order())) {
    return absl::InvalidArgumentError(absl::StrCat("order ", request.order(), " is not an Order"));
  }
  if (absl::Status s = ValidateFilter(request.filter(), "filter"); !s.ok()) return s;
  if (!request.cursor().empty()) {
    const absl::string_view c = request.cursor();
    const char want = request.order() == v1::ORDER_NEWEST_FIRST ? 'n' : 'o';
    if (c.size() < 3 || c[1] != ':' || !IsValidEntryId(c.substr(2)) || (c[0] != 'o' && c[0] != 'n')) {
      return absl::InvalidArgumentError("cursor is not one this daemon returned");
    }
    if (c[0] != want) {
      return absl::InvalidArgumentError("cursor belongs to a listing in the other order");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ListDeadLettersResponse> ListDeadLetters(
    RedisCommander& redis, const std::string& dlq, const v1::ListDeadLettersRequest& request,
    uint32_t max_redrives) {
  const bool newest = request.order() == v1::ORDER_NEWEST_FIRST;
  const size_t page = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  const size_t preview =
      request.preview_bytes() == 0 ? kDefaultPreviewBytes : request.preview_bytes();
  auto [start, end] = FilterRange(request.filter());
  if (!request.cursor().empty()) {
    const std::string after = absl::StrCat("(", request.cursor().substr(2));
    if (newest) {
      end = after;
    } else {
      start = after;
    }
  }
  v1::ListDeadLettersResponse response;
  size_t scanned = 0;
  std::string last_scanned;
  bool more = false;
  absl::Status s = ScanRange(redis, dlq, start, end, newest, [&](StreamEntry&& e) {
    if (static_cast<size_t>(response.dead_letters_size()) == page) {
      // One more match beyond the page decides whether a cursor is needed.
      v1::DeadLetter d = DecodeDeadLetter(e, 0, max_redrives);
      if (MatchesReasons(d, request.filter())) {
        more = true;
        return false;
      }
    } else {
      v1::DeadLetter d = DecodeDeadLetter(e, preview, max_redrives);
      if (MatchesReasons(d, request.filter())) *response.add_dead_letters() = std::move(d);
    }
    last_scanned = e.id;
    if (++scanned >= kListScanBudget) {
      more = true;
      return false;
    }
    return true;
  });
  if (!s.ok()) return s;
  if (more) {
    const std::string& at = static_cast<size_t>(response.dead_letters_size()) == page
                                ? response.dead_letters(response.dead_letters_size() - 1).entry_id()
                                : last_scanned;
    response.set_next_cursor(absl::StrCat(newest ? "n:" : "o:", at));
  }
  return response;
}

absl::StatusOr<v1::DeadLetter> GetDeadLetter(RedisCommander& redis, const std::string& dlq,
                                             const std::string& entry_id, uint32_t max_redrives) {
  std::vector<std::string> missing;
  absl::StatusOr<std::vector<StreamEntry>> found =
      FetchDeadLetters(redis, dlq, {entry_id}, &missing);
  if (!found.ok()) return found.status();
  if (found->empty()) {
    return absl::NotFoundError(absl::StrCat("no dead letter ", entry_id, " in ", dlq));
  }
  return DecodeDeadLetter(found->front(), std::numeric_limits<size_t>::max(), max_redrives);
}

absl::StatusOr<uint64_t> CountDeadLetters(RedisCommander& redis, const std::string& dlq,
                                          const v1::DeadLetterFilter& filter) {
  if (filter.reasons().empty() && filter.from_unix_ms() == 0 && filter.to_unix_ms() == 0) {
    absl::StatusOr<RedisReply> r = redis.Command({"XLEN", dlq});
    if (!r.ok()) return r.status();
    if (r->is_error()) return r->ErrorStatus();
    return static_cast<uint64_t>(r->integer);
  }
  uint64_t n = 0;
  const auto [start, end] = FilterRange(filter);
  absl::Status s = ScanRange(redis, dlq, start, end, false, [&](StreamEntry&& e) {
    if (filter.reasons().empty() || MatchesReasons(DecodeDeadLetter(e, 0, UINT32_MAX), filter)) {
      ++n;
    }
    return true;
  });
  if (!s.ok()) return s;
  return n;
}

absl::StatusOr<std::vector<std::string>> SelectDeadLetters(
    RedisCommander& redis, const std::string& dlq, const v1::DeadLetterFilter& filter,
    size_t limit, const std::function<void(const StreamEntry&)>& visit) {
  std::vector<std::string> out;
  bool over = false;
  const auto [start, end] = FilterRange(filter);
  absl::Status s = ScanRange(redis, dlq, start, end, false, [&](StreamEntry&& e) {
    if (!filter.reasons().empty() &&
        !MatchesReasons(DecodeDeadLetter(e, 0, UINT32_MAX), filter)) {
      return true;
    }
    if (out.size() == limit) {
      over = true;
      return false;
    }
    if (visit) visit(e);
    out.push_back(std::move(e.id));
    return true;
  });
  if (!s.ok()) return s;
  if (over) {
    return absl::ResourceExhaustedError(
        absl::StrCat("more than ", limit,
                     " dead letters match; narrow the selection (a time range, reasons)"));
  }
  return out;
}

absl::StatusOr<std::vector<StreamEntry>> FetchDeadLetters(RedisCommander& redis,
                                                          const std::string& dlq,
                                                          const std::vector<std::string>& ids,
                                                          std::vector<std::string>* missing) {
  std::vector<StreamEntry> out;
  absl::flat_hash_set<std::string> seen;
  constexpr size_t kChunk = 256;
  for (size_t i = 0; i < ids.size(); i += kChunk) {
    std::vector<RedisArgv> commands;
    std::vector<const std::string*> asked;
    for (size_t j = i; j < std::min(ids.size(), i + kChunk); ++j) {
      if (!seen.insert(ids[j]).second) continue;
      commands.push_back({"XRANGE", dlq, ids[j], ids[j]});
      asked.push_back(&ids[j]);
    }
    if (commands.empty()) continue;
    absl::StatusOr<std::vector<RedisReply>> replies = redis.Pipeline(commands);
    if (!replies.ok()) return replies.status();
    for (size_t k = 0; k < replies->size(); ++k) {
      RedisReply& r = (*replies)[k];
      if (r.is_error()) return r.ErrorStatus();
      absl::StatusOr<std::vector<StreamEntry>> entries = ParseEntryList(std::move(r));
      if (!entries.ok()) return entries.status();
      if (entries->empty()) {
        if (missing != nullptr) missing->push_back(*asked[k]);
      } else {
        out.push_back(std::move(entries->front()));
      }
    }
  }
  return out;
}

absl::StatusOr<uint64_t> DeleteDeadLetters(RedisCommander& redis, const std::string& dlq,
                                           const std::vector<std::string>& ids,
                                           std::vector<std::string>* not_found) {
  std::vector<RedisArgv> commands;
  std::vector<const std::string*> asked;
  absl::flat_hash_set<std::string> seen;
  for (const std::string& id : ids) {
    if (!seen.insert(id).second) continue;
    commands.push_back({"XDEL", dlq, id});
    asked.push_back(&id);
  }
  absl::StatusOr<std::vector<RedisReply>> replies = redis.Pipeline(commands);
  if (!replies.ok()) return replies.status();
  uint64_t deleted = 0;
  for (size_t k = 0; k < replies->size(); ++k) {
    const RedisReply& r = (*replies)[k];
    if (r.is_error()) return r.ErrorStatus();
    if (r.integer == 1) {
      ++deleted;
    } else if (not_found != nullptr) {
      not_found->push_back(*asked[k]);
    }
  }
  return deleted;
}

absl::StatusOr<uint64_t> PurgeDeadLetters(RedisCommander& redis, const std::string& dlq,
                                          uint64_t expected_count) {
  absl::StatusOr<RedisReply> r =
      RunScript(redis, PurgeScript(), {dlq}, {absl::StrCat(expected_count)});
  if (!r.ok()) return r.status();
  absl::StatusOr<PurgeResult> purged = DecodePurge(*r);
  if (!purged.ok()) return purged.status();
  if (purged->kind == PurgeResult::Kind::kCountMismatch) {
    return absl::FailedPreconditionError(
        absl::StrCat("the DLQ holds ", purged->count, " dead letters, not ", expected_count,
                     "; nothing was deleted"));
  }
  return static_cast<uint64_t>(purged->count);
}

}  // namespace redrive
