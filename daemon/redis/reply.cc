#include "daemon/redis/reply.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/redis/errors.h"

namespace redrive {

absl::Status RedisReply::ErrorStatus() const { return RedisErrorStatus(*this); }

std::string RedisReply::DebugString() const {
  switch (type) {
    case Type::kNil:
      return "(nil)";
    case Type::kStatus:
      return absl::StrCat("+", str);
    case Type::kError:
      return absl::StrCat("-", str);
    case Type::kInteger:
      return absl::StrCat(":", integer);
    case Type::kString:
      return absl::StrCat("\"", str, "\"");
    case Type::kArray:
      return absl::StrCat("[",
                          absl::StrJoin(elements, ", ",
                                        [](std::string* out, const RedisReply& r) {
                                          out->append(r.DebugString());
                                        }),
                          "]");
  }
  return "?";
}

}  // namespace redrive
