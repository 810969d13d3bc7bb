// EncodeCommand: one Redis command in RESP (the multi-bulk request form),
// ready for hiredis's redisAsyncFormattedCommand. hiredis's own formatter
// runs a printf-style formatter per argument; an XACK of a few hundred ids
// spent more instructions there than in the rest of its path.
//
// Thread-safe: a pure function.
#ifndef REDRIVE_DAEMON_REDIS_RESP_H_
#define REDRIVE_DAEMON_REDIS_RESP_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace redrive {

// "*<n>\r\n" then "$<len>\r\n<bytes>\r\n" per argument (bytes as they are).
std::string EncodeCommand(absl::Span<const absl::string_view> argv);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_RESP_H_
