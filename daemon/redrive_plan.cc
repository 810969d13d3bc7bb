#include "daemon/redrive_plan.h"

#include <functional>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "daemon/dead_letters.h"
#include "daemon/redis/errors.h"
#include "daemon/redis/keyspace.h"
#include "daemon/redis/streams.h"

namespace redrive {
namespace {

// The dry-run answer, counted as entries are decided.
class DryRun {
 public:
  explicit DryRun(v1::RedriveDeadLettersResponse& response) : response_(response) {}

  void Would(const std::string& id, bool skip) {
    auto* list = skip ? response_.mutable_would_skip() : response_.mutable_would_move();
    (skip ? skipping_ : moving_) += 1;
    if (static_cast<size_t>(list->size()) < kMaxListedIds) *list->Add() = id;
  }

  void Finish() {
    response_.set_would_move_count(moving_);
    response_.set_would_skip_count(skipping_);
    response_.set_ids_truncated(moving_ > kMaxListedIds || skipping_ > kMaxListedIds);
  }

 private:
  v1::RedriveDeadLettersResponse& response_;
  uint64_t moving_ = 0;
  uint64_t skipping_ = 0;
};

}  // namespace

absl::StatusOr<RedriveJobSpec> PlanRedriveTarget(RedisCommander& redis,
                                                 const v1::RedriveDeadLettersRequest& request,
                                                 KeyStyle style) {
  const v1::HandlerRef& handler = request.handler();
  const HandlerKeys keys = MakeHandlerKeys(handler.channel(), handler.handler_id(), style);
  RedriveJobSpec spec;
  spec.handler = handler;
  spec.target = request.target();
  if (spec.target.kind() == v1::RedriveTarget::TARGET_UNSPECIFIED) {
    spec.target.set_kind(v1::RedriveTarget::TARGET_HANDLER_RETRY);
  }
  spec.dlq_stream = keys.dlq_stream;
  switch (spec.target.kind()) {
    case v1::RedriveTarget::TARGET_SOURCE_CHANNEL:
      spec.target_stream = keys.stream;
      break;
    case v1::RedriveTarget::TARGET_CHANNEL:
      spec.target_stream = StreamKey(spec.target.channel(), style);
      break;
    default:
      spec.target_stream = keys.retry_stream;
      spec.target_group = keys.retry_group;
  }
  spec.reset_attempts = request.reset_attempts();
  spec.rate_per_second = request.rate_per_second();
  spec.include_quarantined = request.include_quarantined();
  absl::StatusOr<std::string> type = KeyType(redis, spec.target_stream);
  if (!type.ok()) return type.status();
  if (*type != "none" && *type != "stream") {
    return absl::FailedPreconditionError(
        absl::StrCat("target key '", spec.target_stream, "' exists and is not a stream"));
  }
  if (spec.target_group.empty()) {
    absl::StatusOr<std::vector<StreamGroupInfo>> groups = XInfoGroups(redis, spec.target_stream);
    // A transport failure is the status; a Redis refusal means no group.
    if (!groups.ok() && RedisErrorOf(groups.status()) == RedisError::kNone) {
      return groups.status();
    }
    if (!groups.ok() || groups->empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no consumer group reads '", spec.target_stream,
          "': nothing would receive the redriven messages (register a handler first)"));
    }
  }
  return spec;
}

absl::StatusOr<std::vector<std::string>> SelectForRedrive(
    RedisCommander& redis, const v1::RedriveDeadLettersRequest& request, const std::string& dlq,
    uint32_t max_redrives, v1::RedriveDeadLettersResponse* dry_run) {
  std::optional<DryRun> answer;
  if (dry_run != nullptr) answer.emplace(*dry_run);
  auto decide = [&](const StreamEntry& e) {
    const v1::DeadLetter d = DecodeDeadLetter(e, 0, max_redrives);
    answer->Would(e.id, d.quarantined() && !request.include_quarantined());
  };
  std::vector<std::string> order;
  if (request.selection_case() == v1::RedriveDeadLettersRequest::kIds) {
    const std::vector<std::string> ids(request.ids().entry_ids().begin(),
                                       request.ids().entry_ids().end());
    std::vector<std::string> missing;
    absl::StatusOr<std::vector<StreamEntry>> found = FetchDeadLetters(redis, dlq, ids, &missing);
    if (!found.ok()) return found.status();
    absl::flat_hash_set<std::string> seen;
    for (const std::string& id : ids) {
      if (seen.insert(id).second) order.push_back(id);
    }
    if (answer.has_value()) {
      for (const StreamEntry& e : *found) decide(e);
      for (const std::string& id : missing) answer->Would(id, true);
    }
  } else {
    const v1::DeadLetterFilter filter =
        request.selection_case() == v1::RedriveDeadLettersRequest::kFilter ? request.filter()
                                                                           : v1::DeadLetterFilter();
    absl::StatusOr<std::vector<std::string>> found = SelectDeadLetters(
        redis, dlq, filter, kMaxJobSize,
        answer.has_value() ? std::function<void(const StreamEntry&)>(decide) : nullptr);
    if (!found.ok()) return found.status();
    order = *std::move(found);
  }
  if (answer.has_value()) answer->Finish();
  return order;
}

}  // namespace redrive
