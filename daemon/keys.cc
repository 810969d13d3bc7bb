#include "daemon/keys.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace redrive {
namespace {

bool IsNameChar(char c, bool allow_slash) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' ||
         c == '-' || (allow_slash && c == '/');
}

absl::Status CheckName(absl::string_view name, absl::string_view field, bool allow_slash,
                       absl::string_view grammar) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  }
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", name.size(), " bytes; at most ", kMaxNameLength, " allowed"));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    if (!IsNameChar(name[i], allow_slash)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " has a character outside ", grammar, " at byte ", i));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateChannel(absl::string_view channel, absl::string_view field) {
  if (absl::Status s = CheckName(channel, field, /*allow_slash=*/true, "[A-Za-z0-9._:/-]");
      !s.ok()) {
    return s;
  }
  const char first = channel.front();
  if (first == '.' || first == ':' || first == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must not start with '", std::string(1, first), "'"));
  }
  if (absl::EndsWith(channel, ".retry") || absl::EndsWith(channel, ".dlq")) {
    return absl::InvalidArgumentError(
        absl::StrCat(field,
                     " must not end in .retry or .dlq (reserved for retry and "
                     "dead-letter streams)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateHandlerId(absl::string_view handler_id, absl::string_view field) {
  return CheckName(handler_id, field, /*allow_slash=*/false, "[A-Za-z0-9._:-]");
}

bool IsValidEntryId(absl::string_view id) {
  const size_t dash = id.find('-');
  uint64_t part = 0;
  if (dash == absl::string_view::npos) {
    return !id.empty() && id.size() <= 20 &&
           id.find_first_not_of("0123456789") == absl::string_view::npos &&
           absl::SimpleAtoi(id, &part);
  }
  const absl::string_view ms = id.substr(0, dash);
  const absl::string_view seq = id.substr(dash + 1);
  auto decimal = [&part](absl::string_view s) {
    return !s.empty() && s.size() <= 20 &&
           s.find_first_not_of("0123456789") == absl::string_view::npos &&
           absl::SimpleAtoi(s, &part);
  };
  return decimal(ms) && decimal(seq);
}

std::string StreamKey(absl::string_view channel, KeyStyle style) {
  if (style == KeyStyle::kCluster) return absl::StrCat("{", channel, "}");
  return std::string(channel);
}

HandlerKeys MakeHandlerKeys(absl::string_view channel, absl::string_view handler_id,
                            KeyStyle style) {
  HandlerKeys keys;
  keys.stream = StreamKey(channel, style);
  keys.group = std::string(handler_id);
  keys.retry_stream = absl::StrCat(keys.stream, ".", handler_id, ".retry");
  keys.retry_group = absl::StrCat(handler_id, "-retry");
  keys.dlq_stream = absl::StrCat(keys.stream, ".", handler_id, ".dlq");
  keys.due_zset = absl::StrCat(keys.retry_stream, ".due");
  return keys;
}

std::string ConsumerName(absl::string_view handler_id, absl::string_view instance_id,
                         absl::string_view label) {
  if (label.empty()) return absl::StrCat(handler_id, "-", instance_id);
  return absl::StrCat(handler_id, "-", label, "-", instance_id);
}

std::string ScheduledConsumerName(absl::string_view handler_id) {
  return absl::StrCat(handler_id, ":scheduled");
}

std::string LegacyRetryStream(absl::string_view channel, KeyStyle style) {
  return absl::StrCat(StreamKey(channel, style), ".retry");
}

std::string LegacyDlqStream(absl::string_view channel, KeyStyle style) {
  return absl::StrCat(StreamKey(channel, style), ".dlq");
}

std::string RegistryField(absl::string_view channel, absl::string_view handler_id) {
  return absl::StrCat(channel, " ", handler_id);
}

std::string PresenceField(absl::string_view channel, absl::string_view handler_id,
                          absl::string_view instance_id) {
  return absl::StrCat(channel, " ", handler_id, " ", instance_id);
}

std::optional<std::string> PresenceInstance(absl::string_view field, absl::string_view channel,
                                            absl::string_view handler_id) {
  const std::string prefix = absl::StrCat(channel, " ", handler_id, " ");
  if (!absl::StartsWith(field, prefix) || field.size() == prefix.size()) return std::nullopt;
  const absl::string_view instance = field.substr(prefix.size());
  if (instance.find(' ') != absl::string_view::npos) return std::nullopt;
  return std::string(instance);
}

bool IsPresenceField(absl::string_view field) {
  return std::count(field.begin(), field.end(), ' ') == 2;
}

std::string RedriveJobKey(absl::string_view job_id) {
  return absl::StrCat("{redrive}:job:", job_id);
}

std::string RedriveJobIdsKey(absl::string_view job_id) {
  return absl::StrCat("{redrive}:job:", job_id, ":ids");
}

std::string RedriveStepRecordKey(absl::string_view dlq, absl::string_view job_id) {
  return absl::StrCat(dlq, ":redrive:", job_id);
}

}  // namespace redrive
