// The records of FakeStreamOps (tests/fakes/fake_stream_ops.h): one per
// StreamOps operation, holding the arguments of a call by name; Reply is what
// the operation's callback takes. Tests read them (calls<AckCall>()) and
// program answers from them (Answer<AckCall>(fn)).
#ifndef REDRIVE_TESTS_FAKES_STREAM_OP_CALLS_H_
#define REDRIVE_TESTS_FAKES_STREAM_OP_CALLS_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/redis/stream_ops.h"

namespace redrive::testing {

// clang-format off
using Str = std::string;
using Ids = std::vector<std::string>;
using Entries = std::vector<StreamEntry>;
using HashPairs = std::vector<std::pair<std::string, std::string>>;
template <typename T> using Or = absl::StatusOr<T>;

struct CreateGroupCall { Str stream, group, start_id; using Reply = absl::Status; };
struct ReadGroupCall { GroupRef g; uint32_t count; bool no_ack; using Reply = Or<Entries>; };
struct ClaimCall { GroupRef g; absl::Duration min_idle; Ids ids; using Reply = Or<Entries>; };
struct ReadEntryCall { Str stream, id; using Reply = Or<std::optional<StreamEntry>>; };
struct AckCall { Str stream, group; Ids ids; using Reply = absl::Status; };
struct PendingConsumersCall { Str stream, group; using Reply = Or<Ids>; };
struct IdlePendingCall { GroupRef g; absl::Duration min_idle; uint32_t count;
                         using Reply = Or<Ids>; };
struct ConsumersCall { Str stream, group; using Reply = Or<std::vector<ConsumerInfo>>; };
struct DeleteIdleConsumerCall { Str stream, group, consumer; using Reply = Or<bool>; };
struct TouchCall { GroupRef g; Ids ids; bool release; using Reply = absl::Status; };
struct EarliestDueCall { Str due_zset; using Reply = Or<std::optional<DueEntry>>; };
struct DueBatchCall { Str due_zset; uint32_t limit; using Reply = Or<std::vector<DueEntry>>; };
struct RemoveDueCall { Str due_zset, member; using Reply = absl::Status; };  // never answered
struct ScheduleRetryCall { ScheduleRetryOp op; using Reply = Or<ScheduleRetryResult>; };
struct MoveDueCall { MoveDueOp op; using Reply = Or<MoveDueResult>; };
struct DeadLetterCall { DeadLetterOp op; using Reply = Or<DeadLetterResult>; };
struct TrimRetryCall { Str retry_stream; uint32_t limit; absl::Duration retention;
                       using Reply = Or<TrimRetryResult>; };
struct HashFieldsCall { Str key; using Reply = Or<HashPairs>; };
struct HashHasCall { Str key, field; using Reply = Or<bool>; };
struct HashSetCall { Str key; HashPairs fields; using Reply = absl::Status; };
struct HashDeleteCall { Str key, field; using Reply = absl::Status; };
struct BarrierCall { using Reply = absl::Status; };

// clang-format on

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_FAKES_STREAM_OP_CALLS_H_
