// The range checks of a client's verbs (broker.proto, Verb) and the notice a
// verb gets when its delivery is not in flight on the stream. Pure functions:
// the dispatcher applies what they let through.
#ifndef REDRIVE_DAEMON_ENGINE_VERB_CHECKS_H_
#define REDRIVE_DAEMON_ENGINE_VERB_CHECKS_H_

#include <cstddef>
#include <optional>
#include <string>
#include <utility>

#include "daemon/engine/lease_table.h"
#include "redrive/v1/broker.pb.h"

namespace redrive {

inline constexpr size_t kMaxVerbReason = 4096;    // NACK/TERMINATE reason, bytes
inline constexpr size_t kMaxVerbErrorCode = 128;  // NACK/TERMINATE error_code, bytes

// The notice for a verb whose delivery is not in flight (`settled` = how it
// was settled, if it is still remembered); nullopt for a repeated ACK, which
// is idempotent and silent.
std::optional<std::pair<v1::Notice::Code, std::string>> NotInFlight(
    const v1::Verb& verb, std::optional<LeaseTable::Outcome> settled);

// Why a verb is out of range or has no action (INVALID_VERB); "" when valid.
std::string InvalidVerb(const v1::Verb& verb);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_VERB_CHECKS_H_
