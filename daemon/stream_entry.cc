#include "daemon/stream_entry.h"

#include "absl/strings/str_cat.h"
#include "daemon/logging.h"
#include "nlohmann/json.hpp"

namespace redrive {
namespace {

bool IsUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80           ? 1
                     : (c >> 5) == 0x6  ? 2
                     : (c >> 4) == 0xE  ? 3
                     : (c >> 3) == 0x1E ? 4
                                        : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += n;
  }
  return true;
}

// EggAI carries the W3C trace context inside its CloudEvents JSON body.
void TraceFromJsonBody(const std::string& body, v1::TraceContext& trace) {
  if (body.empty() || body.front() != '{' || body.find("traceparent") == std::string::npos) {
    return;
  }
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return;
  auto tp = j.find("traceparent");
  if (tp != j.end() && tp->is_string()) trace.set_traceparent(tp->get<std::string>());
  auto ts = j.find("tracestate");
  if (ts != j.end() && ts->is_string()) trace.set_tracestate(ts->get<std::string>());
}

}  // namespace

namespace {

// Shared by the copying and the moving parsers: `Take` copies or moves a
// string out of a reply node.
template <typename Reply, typename Take>
absl::StatusOr<std::vector<StreamEntry>> ParseEntries(Reply&& list, Take take) {
  std::vector<StreamEntry> out;
  if (list.is_nil()) return out;
  if (!list.is_array()) {
    return absl::InternalError(absl::StrCat("entry list expected, got ", list.DebugString()));
  }
  out.reserve(list.elements.size());
  for (auto& e : list.elements) {
    if (!e.is_array() || e.elements.size() != 2 || !e.elements[0].is_string()) {
      return absl::InternalError(absl::StrCat("malformed stream entry ", e.DebugString()));
    }
    StreamEntry entry;
    entry.id = take(e.elements[0].str);
    auto& fields = e.elements[1];
    if (fields.is_nil()) {
      entry.deleted = true;
    } else if (fields.is_array() && fields.elements.size() % 2 == 0) {
      entry.fields.reserve(fields.elements.size() / 2);
      for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
        entry.fields.emplace_back(take(fields.elements[i].str), take(fields.elements[i + 1].str));
      }
    } else {
      return absl::InternalError(absl::StrCat("malformed stream fields ", fields.DebugString()));
    }
    out.push_back(std::move(entry));
  }
  return out;
}

// The entry list of `stream` in a read reply (const or not), or null.
template <typename Reply>
Reply* FindStream(Reply& reply, absl::string_view stream) {
  for (Reply& s : reply.elements) {
    if (s.is_array() && s.elements.size() == 2 && s.elements[0].str == stream) {
      return &s.elements[1];
    }
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<std::vector<StreamEntry>> ParseEntryList(const RedisReply& list) {
  return ParseEntries(list, [](const std::string& s) { return s; });
}

absl::StatusOr<std::vector<StreamEntry>> ParseEntryList(RedisReply&& list) {
  return ParseEntries(list, [](std::string& s) { return std::move(s); });
}

absl::StatusOr<std::vector<StreamEntry>> ParseReadReply(const RedisReply& reply,
                                                        absl::string_view stream) {
  if (reply.is_nil()) return std::vector<StreamEntry>{};
  if (!reply.is_array()) {
    return absl::InternalError(absl::StrCat("read reply expected, got ", reply.DebugString()));
  }
  const RedisReply* list = FindStream(reply, stream);
  return list == nullptr ? std::vector<StreamEntry>{} : ParseEntryList(*list);
}

absl::StatusOr<std::vector<StreamEntry>> ParseReadReply(RedisReply&& reply,
                                                        absl::string_view stream) {
  if (reply.is_nil()) return std::vector<StreamEntry>{};
  if (!reply.is_array()) {
    return absl::InternalError(absl::StrCat("read reply expected, got ", reply.DebugString()));
  }
  RedisReply* list = FindStream(reply, stream);
  return list == nullptr ? std::vector<StreamEntry>{} : ParseEntryList(std::move(*list));
}

absl::Status FillMessage(const StreamEntry& entry, v1::Delivery& d) {
  absl::StatusOr<DecodedEntry> decoded = DecodeStreamEntry(entry.fields);
  if (!decoded.ok()) {
    // Corrupt envelope: hand over the raw bytes; the caller decides.
    for (const auto& [name, value] : entry.fields) {
      if (name == kDataField) {
        d.set_payload(value);
        break;
      }
    }
    d.set_source_format(v1::SOURCE_FORMAT_RAW);
    return decoded.status();
  }
  FillMessage(*std::move(decoded), d);
  return absl::OkStatus();
}

void FillMessage(DecodedEntry&& decoded_entry, v1::Delivery& d) {
  DecodedEntry* decoded = &decoded_entry;
  switch (decoded->format) {
    case EntryFormat::kBinaryV1:
      d.set_source_format(v1::SOURCE_FORMAT_BINARY_V1);
      break;
    case EntryFormat::kLegacyJson:
      d.set_source_format(v1::SOURCE_FORMAT_LEGACY_JSON);
      break;
    case EntryFormat::kRaw:
      d.set_source_format(v1::SOURCE_FORMAT_RAW);
      break;
    case EntryFormat::kFields:
      d.set_source_format(v1::SOURCE_FORMAT_FIELDS);
      break;
  }
  if (decoded->format == EntryFormat::kFields) {
    bool utf8 = true;
    nlohmann::ordered_json object = nlohmann::ordered_json::object();
    for (const auto& [name, value] : decoded->fields) {
      v1::StreamField* f = d.add_fields();
      f->set_name(name);
      f->set_value(value);
      utf8 = utf8 && IsUtf8(name) && IsUtf8(value);
      if (utf8) object[name] = value;
    }
    if (utf8) {
      d.set_payload(object.dump());
      d.set_content_type("application/json");
    }
    return;
  }
  for (auto& [key, value] : decoded->headers) {
    if (key == "correlation_id") {
      d.set_correlation_id(std::move(value));
    } else if (key == "content-type") {
      d.set_content_type(std::move(value));
    } else if (key == "traceparent") {
      d.mutable_trace()->set_traceparent(std::move(value));
    } else if (key == "tracestate") {
      d.mutable_trace()->set_tracestate(std::move(value));
    } else {
      v1::Header* h = d.add_headers();
      h->set_key(std::move(key));
      h->set_value(std::move(value));
    }
  }
  if (!d.has_trace()) TraceFromJsonBody(decoded->body, *d.mutable_trace());
  if (d.has_trace() && d.trace().traceparent().empty() && d.trace().tracestate().empty()) {
    d.clear_trace();
  }
  d.set_payload(std::move(decoded->body));
}

std::string TraceparentOf(const StreamEntry& entry) {
  absl::StatusOr<DecodedEntry> decoded = DecodeStreamEntry(entry.fields);
  if (!decoded.ok() || decoded->format == EntryFormat::kFields) return "";
  for (auto it = decoded->headers.rbegin(); it != decoded->headers.rend(); ++it) {
    if (it->first == "traceparent") return std::move(it->second);
  }
  v1::TraceContext trace;
  TraceFromJsonBody(decoded->body, trace);
  return std::move(*trace.mutable_traceparent());
}

}  // namespace redrive
