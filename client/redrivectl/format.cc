#include "client/redrivectl/format.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"

namespace redrive::ctl {
namespace {

// Cells of free text in tables are cut to this many code points.
constexpr size_t kMaxCell = 60;

size_t CodePoints(absl::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// The first `n` code points of `s` (valid UTF-8 after EscapeForLine), with
// "..." appended when anything was cut or `more` is set.
std::string Cut(const std::string& s, size_t n, bool more = false) {
  size_t points = 0;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (points == n) break;
      ++points;
    }
  }
  if (i >= s.size()) return more ? s + "..." : s;
  return s.substr(0, i) + "...";
}

std::string Dash(const std::string& s) { return s.empty() ? "-" : s; }

std::string HandlerName(const v1::HandlerRef& ref) {
  return absl::StrCat(ref.channel(), "/", ref.handler_id());
}

std::string HeaderList(const google::protobuf::RepeatedPtrField<v1::Header>& headers) {
  std::vector<std::string> parts;
  for (const v1::Header& h : headers) {
    parts.push_back(absl::StrCat(EscapeForLine(h.key()), "=", EscapeForLine(h.value())));
  }
  return absl::StrJoin(parts, ", ");
}

void KeyValue(std::string& out, absl::string_view key, absl::string_view value) {
  absl::StrAppend(&out, key, ":", std::string(key.size() < 18 ? 18 - key.size() : 1, ' '), value,
                  "\n");
}

// Length of the valid UTF-8 sequence at s[i] that is not a C1 control, or 0.
size_t Utf8Sequence(absl::string_view s, size_t i) {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = at(i);
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    if (c == 0xC2) lo = 0xA0;  // U+0080..U+009F are C1 controls
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
  }
  return len;
}

}  // namespace

Table::Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }

void Table::AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

std::string Table::Render() const {
  std::vector<size_t> width;
  for (const auto& row : rows_) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], CodePoints(row[i]));
  }
  std::string out;
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&out, row[i]);
      if (i + 1 < row.size()) out.append(width[i] - CodePoints(row[i]) + 2, ' ');
    }
    out.push_back('\n');
  }
  return out;
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  // Only fails for messages with unresolvable Any fields; redrive.v1 has none.
  const auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) return absl::StrCat("{\"error\":\"", EscapeForLine(status.ToString()), "\"}");
  return out;
}

std::string EscapeForLine(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
    } else if (size_t len = c >= 0x80 ? Utf8Sequence(bytes, i) : 0; len > 0) {
      out.append(bytes.data() + i, len);
      i += len;
      continue;
    } else {
      absl::StrAppendFormat(&out, "\\x%02X", c);
    }
    ++i;
  }
  return out;
}

std::string FormatUnixMs(int64_t unix_ms) {
  if (unix_ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(unix_ms),
                          absl::UTCTimeZone());
}

std::string FormatDurationMs(int64_t ms) {
  if (ms <= 0) return "-";
  if (ms < 1000) return absl::StrCat(ms, "ms");
  int64_t s = ms / 1000;
  const int64_t days = s / 86400;
  const int64_t hours = s / 3600 % 24;
  const int64_t minutes = s / 60 % 60;
  s %= 60;
  std::string out;
  if (days > 0) absl::StrAppend(&out, days, "d");
  if (!out.empty() || hours > 0) absl::StrAppend(&out, hours, "h");
  if (!out.empty() || minutes > 0) absl::StrAppend(&out, minutes, "m");
  absl::StrAppend(&out, s, "s");
  return out;
}

std::string StatusCodeName(int code) {
  std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  return name.empty() ? absl::StrCat("CODE_", code) : name;
}

std::string FormatError(const absl::Status& status) {
  return absl::StrCat("redrivectl: ", StatusCodeName(static_cast<int>(status.code())), ": ",
                      EscapeForLine(status.message()), "\n");
}

std::string FormatHandlers(const v1::ListHandlersResponse& response) {
  Table t(
      {"CHANNEL", "HANDLER", "STREAMS", "PENDING", "LAG", "RETRY", "DLQ", "OLDEST_DLQ", "PAUSED"});
  for (const v1::HandlerInfo& h : response.handlers()) {
    t.AddRow({h.handler().channel(), h.handler().handler_id(), absl::StrCat(h.connected_streams()),
              absl::StrCat(h.pending()), h.lag() < 0 ? "?" : absl::StrCat(h.lag()),
              absl::StrCat(h.retry_depth()), absl::StrCat(h.dlq_depth()),
              FormatDurationMs(h.oldest_dead_letter_age_ms()), h.paused() ? "yes" : "no"});
  }
  return t.Render();
}

std::string FormatHandler(const v1::HandlerInfo& handler) {
  v1::ListHandlersResponse r;
  *r.add_handlers() = handler;
  return FormatHandlers(r);
}

std::string FormatDeadLetters(const v1::ListDeadLettersResponse& response) {
  Table t({"ENTRY_ID", "REASON", "ATTEMPTS", "DEAD_LETTERED", "ERROR", "PAYLOAD"});
  for (const v1::DeadLetter& d : response.dead_letters()) {
    std::string error = d.last_error_code().empty()
                            ? d.last_error()
                            : absl::StrCat(d.last_error_code(), ": ", d.last_error());
    t.AddRow({d.entry_id() + (d.quarantined() ? " (quarantined)" : ""), Dash(d.reason()),
              absl::StrCat(d.attempts()), FormatUnixMs(d.dead_lettered_unix_ms()),
              Dash(Cut(EscapeForLine(error), kMaxCell)),
              Cut(EscapeForLine(d.payload()), kMaxCell, d.payload_truncated())});
  }
  std::string out = t.Render();
  if (!response.next_cursor().empty()) {
    absl::StrAppend(&out, "next cursor: ", response.next_cursor(), "\n");
  }
  return out;
}

std::string FormatDeadLetter(const v1::DeadLetter& d) {
  std::string out;
  KeyValue(out, "entry_id", d.entry_id());
  KeyValue(out, "reason", Dash(d.reason()));
  KeyValue(out, "source_channel", Dash(d.source_channel()));
  KeyValue(out, "handler_id", Dash(d.handler_id()));
  KeyValue(out, "attempts", absl::StrCat(d.attempts()));
  KeyValue(out, "last_error", Dash(EscapeForLine(d.last_error())));
  KeyValue(out, "last_error_code", Dash(EscapeForLine(d.last_error_code())));
  KeyValue(out, "first_failure", FormatUnixMs(d.first_failure_unix_ms()));
  KeyValue(out, "dead_lettered", FormatUnixMs(d.dead_lettered_unix_ms()));
  KeyValue(out, "original_entry_id", Dash(d.original_entry_id()));
  KeyValue(out, "redrive_count", absl::StrCat(d.redrive_count()));
  KeyValue(out, "quarantined", d.quarantined() ? "yes" : "no");
  KeyValue(out, "eggai_format", d.eggai_format() ? "yes" : "no");
  KeyValue(out, "content_type", Dash(EscapeForLine(d.content_type())));
  KeyValue(out, "headers", Dash(HeaderList(d.headers())));
  KeyValue(out, "payload_size",
           absl::StrCat(d.payload_size(), d.payload_truncated() ? " (truncated)" : ""));
  if (d.history_size() > 0) {
    Table t({"ATTEMPT", "TIME", "OUTCOME", "ERROR_CODE", "ERROR", "CONSUMER"});
    for (const v1::AttemptRecord& a : d.history()) {
      t.AddRow({absl::StrCat(a.attempt()), FormatUnixMs(a.unix_ms()), Dash(a.outcome()),
                Dash(EscapeForLine(a.error_code())), Dash(Cut(EscapeForLine(a.error()), kMaxCell)),
                Dash(a.consumer())});
    }
    absl::StrAppend(&out, "history:\n");
    for (absl::string_view line : absl::StrSplit(t.Render(), '\n', absl::SkipEmpty())) {
      absl::StrAppend(&out, "  ", line, "\n");
    }
  } else {
    KeyValue(out, "history", "-");
  }
  absl::StrAppend(&out, "payload:\n", EscapeForLine(d.payload()), "\n");
  return out;
}

std::string FormatCount(const v1::CountDeadLettersResponse& response) {
  return absl::StrCat(response.count(), "\n");
}

std::string TargetName(const v1::RedriveTarget& target) {
  switch (target.kind()) {
    case v1::RedriveTarget::TARGET_SOURCE_CHANNEL:
      return "source-channel";
    case v1::RedriveTarget::TARGET_CHANNEL:
      return absl::StrCat("channel:", target.channel());
    case v1::RedriveTarget::TARGET_HANDLER_RETRY:
    case v1::RedriveTarget::TARGET_UNSPECIFIED:
    default:
      return "handler-retry";
  }
}

std::string FormatJob(const v1::RedriveJob& job) {
  Table t({"JOB_ID", "STATE", "HANDLER", "TARGET", "TOTAL", "MOVED", "SKIPPED", "FAILED", "RATE"});
  t.AddRow({job.job_id(), v1::RedriveJob::State_Name(job.state()), HandlerName(job.handler()),
            TargetName(job.target()), absl::StrCat(job.total()), absl::StrCat(job.moved()),
            absl::StrCat(job.skipped()), absl::StrCat(job.failed()),
            job.rate_per_second() == 0 ? "-" : absl::StrCat(job.rate_per_second(), "/s")});
  std::string out = t.Render();
  if (!job.error().empty()) absl::StrAppend(&out, "error: ", EscapeForLine(job.error()), "\n");
  return out;
}

std::string FormatJobProgress(const v1::RedriveJob& job) {
  return absl::StrCat("job ", job.job_id(), " ", v1::RedriveJob::State_Name(job.state()),
                      ": moved ", job.moved(), "/", job.total(), ", skipped ", job.skipped(),
                      ", failed ", job.failed(), "\n");
}

std::string FormatRedrive(const v1::RedriveDeadLettersResponse& response) {
  if (response.has_job()) return FormatJob(response.job());
  std::string out = absl::StrCat("dry run: ", response.would_move_size(), " would move, ",
                                 response.would_skip_size(), " would skip\n");
  for (const std::string& id : response.would_move()) absl::StrAppend(&out, "move  ", id, "\n");
  for (const std::string& id : response.would_skip()) absl::StrAppend(&out, "skip  ", id, "\n");
  return out;
}

std::string FormatDelete(const v1::DeleteDeadLettersResponse& response) {
  std::string out = absl::StrCat("deleted ", response.deleted(), "\n");
  for (const std::string& id : response.not_found()) {
    absl::StrAppend(&out, "not found: ", id, "\n");
  }
  return out;
}

std::string FormatPurge(const v1::PurgeDeadLettersResponse& response) {
  return absl::StrCat("purged ", response.purged(), "\n");
}

std::string FormatDeleteHandler(const v1::DeleteHandlerResponse& response) {
  std::string out = absl::StrCat("deleted handler ", response.handler().handler_id(), " on ",
                                 response.handler().channel(), "\n");
  for (const std::string& g : response.destroyed_groups()) {
    absl::StrAppend(&out, "destroyed group: ", g, "\n");
  }
  for (const std::string& k : response.deleted_keys()) {
    absl::StrAppend(&out, "deleted key: ", k, "\n");
  }
  absl::StrAppend(&out, "discarded: ", response.retry_entries(), " retry entries, ",
                  response.dead_letters(), " dead letters\n");
  absl::StrAppend(&out, "unregistered: ", response.unregistered() ? "yes" : "no",
                  ", pause flag removed: ", response.unpaused() ? "yes" : "no", "\n");
  return out;
}

std::string FormatMigrate(const v1::MigrateLegacyKeysResponse& response) {
  std::string out;
  if (response.dry_run()) absl::StrAppend(&out, "dry run: nothing was moved\n");
  Table t({"HANDLER", "RETRY_ENTRIES", "TARGET_STREAM"});
  for (const v1::LegacyMigration& m : response.migrations()) {
    t.AddRow({m.handler_id(), absl::StrCat(m.retry_entries()), m.target_stream()});
  }
  absl::StrAppend(&out, t.Render());
  absl::StrAppend(&out, "legacy retry stream: ", Dash(response.legacy_retry_stream()), "\n",
                  "legacy dlq stream: ", Dash(response.legacy_dlq_stream()), "\n",
                  "unattributed dead letters: ", response.unattributed_dead_letters(), "\n");
  return out;
}

std::string FormatPublish(const v1::PublishResponse& response) {
  return absl::StrCat(response.entry_id(), "\n");
}

std::string FormatDelivery(const v1::Delivery& delivery) {
  return absl::StrCat(delivery.entry_id(), " attempt=", delivery.attempt(), " headers={",
                      HeaderList(delivery.headers()), "} ", EscapeForLine(delivery.payload()),
                      "\n");
}

}  // namespace redrive::ctl
