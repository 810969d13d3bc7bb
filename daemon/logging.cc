#include "daemon/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"

namespace redrive {
namespace {

// The fields of the line this thread is logging (ScopedLogFields), or null.
thread_local const LogFields* current_fields = nullptr;

void Append(spdlog::memory_buf_t& dest, absl::string_view s) {
  dest.append(s.data(), s.data() + s.size());
}

void AppendNumber(spdlog::memory_buf_t& dest, uint64_t n) {
  char digits[20];
  size_t i = sizeof(digits);
  do {
    digits[--i] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  dest.append(digits + i, digits + sizeof(digits));
}

// The length of the well-formed UTF-8 sequence at the start of `s` (RFC
// 3629: no overlongs, no surrogates, at most U+10FFFF), or 0.
size_t Utf8SequenceLength(absl::string_view s) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  size_t n = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[k]);
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return 0;
  }
  return n;
}

void AppendJsonEscaped(spdlog::memory_buf_t& dest, absl::string_view in) {
  size_t i = 0;
  while (i < in.size()) {
    const char c = in[i];
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80) {
      const size_t n = Utf8SequenceLength(in.substr(i));
      if (n == 0) {
        Append(dest, "\xEF\xBF\xBD");  // U+FFFD
        ++i;
      } else {
        Append(dest, in.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        Append(dest, "\\\"");
        break;
      case '\\':
        Append(dest, "\\\\");
        break;
      case '\n':
        Append(dest, "\\n");
        break;
      case '\r':
        Append(dest, "\\r");
        break;
      case '\t':
        Append(dest, "\\t");
        break;
      default:
        if (u < 0x20) {
          char escaped[7];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", u);
          Append(dest, absl::string_view(escaped, 6));
        } else {
          dest.push_back(c);
        }
    }
    ++i;
  }
}

// A text-mode value needs quotes unless it is printable ASCII without
// space, '"', '=' or '\'.
bool NeedsQuotes(absl::string_view v) {
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

// %j: the log message, JSON-escaped.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm& /*tm*/,
              spdlog::memory_buf_t& dest) override {
    AppendJsonEscaped(dest, absl::string_view(msg.payload.data(), msg.payload.size()));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

// %J: the fields as JSON members, each preceded by a comma.
class JsonFieldsFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& /*msg*/, const std::tm& /*tm*/,
              spdlog::memory_buf_t& dest) override {
    if (current_fields == nullptr) return;
    current_fields->ForEach(
        [&dest](LogKey key, absl::string_view value) {
          Append(dest, ",\"");
          Append(dest, LogKeyName(key));
          Append(dest, "\":\"");
          AppendJsonEscaped(dest, value);
          dest.push_back('"');
        },
        [&dest](LogKey key, uint64_t value) {
          Append(dest, ",\"");
          Append(dest, LogKeyName(key));
          Append(dest, "\":");
          AppendNumber(dest, value);
        });
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonFieldsFlag>();
  }
};

// %k: the fields as ` key=value` (value quoted when needed).
class TextFieldsFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& /*msg*/, const std::tm& /*tm*/,
              spdlog::memory_buf_t& dest) override {
    if (current_fields == nullptr) return;
    current_fields->ForEach(
        [&dest](LogKey key, absl::string_view value) {
          dest.push_back(' ');
          Append(dest, LogKeyName(key));
          dest.push_back('=');
          if (NeedsQuotes(value)) {
            dest.push_back('"');
            AppendJsonEscaped(dest, value);
            dest.push_back('"');
          } else {
            Append(dest, value);
          }
        },
        [&dest](LogKey key, uint64_t value) {
          dest.push_back(' ');
          Append(dest, LogKeyName(key));
          dest.push_back('=');
          AppendNumber(dest, value);
        });
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<TextFieldsFlag>();
  }
};

}  // namespace

absl::string_view LogKeyName(LogKey key) {
  static constexpr absl::string_view kNames[kLogKeyCount] = {
      "channel",     "handler", "entry_id", "trace_id", "reason",   "session",
      "delivery_id", "attempt", "stream",   "group",    "consumer", "dlq_entry_id",
      "job",         "rpc",     "peer",     "error"};
  return kNames[static_cast<int>(key)];
}

ScopedLogFields::ScopedLogFields(const LogFields& fields) : previous_(current_fields) {
  current_fields = &fields;
}

ScopedLogFields::~ScopedLogFields() { current_fields = previous_; }

std::string JsonEscape(absl::string_view in) {
  spdlog::memory_buf_t buf;
  AppendJsonEscaped(buf, in);
  return std::string(buf.data(), buf.size());
}

std::unique_ptr<spdlog::formatter> MakeLogFormatter(bool json) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  if (json) {
    formatter->add_flag<JsonMessageFlag>('j').add_flag<JsonFieldsFlag>('J').set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%j"%J})");
  } else {
    formatter->add_flag<TextFieldsFlag>('k').set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %L %v%k");
  }
  return formatter;
}

absl::Status InitLogging(const LogOptions& options) {
  const spdlog::level::level_enum level = spdlog::level::from_str(options.level);
  if (level == spdlog::level::off && options.level != "off") {
    return absl::InvalidArgumentError(absl::StrCat("unknown log level ", options.level));
  }
  // Synchronous on purpose: the fields formatter reads a thread_local of the
  // logging thread (see logging.h).
  auto logger = std::make_shared<spdlog::logger>("redrived",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(MakeLogFormatter(options.json));
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

}  // namespace redrive
