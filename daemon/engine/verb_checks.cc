#include "daemon/engine/verb_checks.h"

#include "absl/strings/str_cat.h"
#include "daemon/subscription.h"

namespace redrive {

std::optional<std::pair<v1::Notice::Code, std::string>> NotInFlight(
    const v1::Verb& verb, std::optional<LeaseTable::Outcome> settled) {
  const uint64_t id = verb.delivery_id();
  if (!settled.has_value()) {
    return std::make_pair(v1::Notice::UNKNOWN_DELIVERY,
                          absl::StrCat("no delivery ", id, " on this stream"));
  }
  if (verb.has_ack() && *settled == LeaseTable::Outcome::kAcked) return std::nullopt;
  return std::make_pair(v1::Notice::ALREADY_SETTLED,
                        absl::StrCat("delivery ", id, " was already settled"));
}

std::string InvalidVerb(const v1::Verb& verb) {
  if (verb.has_nack()) {
    const v1::Nack& nack = verb.nack();
    if (nack.reason().size() > kMaxVerbReason || nack.error_code().size() > kMaxVerbErrorCode ||
        (nack.has_delay_ms() && nack.delay_ms() > kMaxDurationMs)) {
      return absl::StrCat("nack.reason at most ", kMaxVerbReason, " bytes, error_code at most ",
                          kMaxVerbErrorCode, ", delay_ms at most ", kMaxDurationMs);
    }
  } else if (verb.has_terminate()) {
    const v1::Terminate& t = verb.terminate();
    if (t.reason().size() > kMaxVerbReason || t.error_code().size() > kMaxVerbErrorCode) {
      return absl::StrCat("terminate.reason at most ", kMaxVerbReason,
                          " bytes, error_code at most ", kMaxVerbErrorCode);
    }
  } else if (verb.has_extend()) {
    if (verb.extend().lease_ms() > kMaxDurationMs) {
      return absl::StrCat("extend.lease_ms ", verb.extend().lease_ms(), " is outside 0..",
                          kMaxDurationMs);
    }
  } else if (!verb.has_ack()) {
    return "verb has no action";
  }
  return "";
}

}  // namespace redrive
