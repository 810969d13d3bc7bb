#include "daemon/admin_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <tuple>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/dead_letters.h"
#include "daemon/grpc_status.h"
#include "daemon/handler_catalogue.h"
#include "daemon/legacy_migration.h"

namespace redrive {
namespace {

// Ids listed per dry-run answer list.
constexpr size_t kMaxListedIds = 10000;

absl::Status ValidateIds(const google::protobuf::RepeatedPtrField<std::string>& ids,
                         absl::string_view field) {
  if (ids.empty() || static_cast<size_t>(ids.size()) > kMaxSelectedIds) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must name 1..", kMaxSelectedIds,
                                                   " entry ids (got ", ids.size(), ")"));
  }
  for (int i = 0; i < ids.size(); ++i) {
    if (!IsValidEntryId(ids[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "] '", ids[i].substr(0, 64), "' is not an entry id"));
    }
  }
  return absl::OkStatus();
}

// XINFO GROUPS reply → the named group's fields; empty when absent.
absl::flat_hash_map<std::string, RedisReply> GroupInfo(const RedisReply& groups,
                                                       absl::string_view name) {
  absl::flat_hash_map<std::string, RedisReply> out;
  if (!groups.is_array()) return out;
  for (const RedisReply& g : groups.elements) {
    absl::flat_hash_map<std::string, RedisReply> fields;
    for (size_t i = 0; i + 1 < g.elements.size(); i += 2) {
      fields[g.elements[i].str] = g.elements[i + 1];
    }
    auto it = fields.find("name");
    if (it != fields.end() && it->second.str == name) return fields;
  }
  return out;
}

int64_t IntField(const absl::flat_hash_map<std::string, RedisReply>& fields, const char* key,
                 int64_t fallback) {
  auto it = fields.find(key);
  if (it == fields.end() || !it->second.is_integer()) return fallback;
  return it->second.integer;
}

absl::Status ValidateJobId(const std::string& id) {
  if (RedriveJobs::IsValidJobId(id)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("job_id '", id.substr(0, 64), "' is not a job id (16 hex digits)"));
}

std::string HandlerText(const v1::HandlerRef& h) {
  return absl::StrCat("channel=", h.channel(), " handler=", h.handler_id());
}

}  // namespace

absl::Status ValidateHandlerRef(const v1::HandlerRef& handler, absl::string_view field) {
  if (absl::Status s = ValidateChannel(handler.channel(), absl::StrCat(field, ".channel"));
      !s.ok()) {
    return s;
  }
  return ValidateHandlerId(handler.handler_id(), absl::StrCat(field, ".handler_id"));
}

AdminService::AdminService(Options options, RedisExecutor& executor, DeliveryEngine& engine,
                           RedriveJobs& jobs)
    : options_(std::move(options)),
      auth_(options_.auth_disabled, options_.token),
      executor_(executor),
      engine_(engine),
      jobs_(jobs) {}

grpc::ServerUnaryReactor* AdminService::Serve(grpc::CallbackServerContext* context,
                                              absl::Status validated, Work work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status auth = auth_.Check(context->client_metadata()); !auth.ok()) {
    spdlog::warn("admin call from {} refused: {}", context->peer(), auth.error_message());
    reactor->Finish(auth);
    return reactor;
  }
  if (!validated.ok()) {
    reactor->Finish(ToGrpcStatus(validated));
    return reactor;
  }
  const bool queued = executor_.Submit([reactor, work = std::move(work)](RedisCommander& redis) {
    reactor->Finish(ToGrpcStatus(work(redis)));
  });
  if (!queued) {
    reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 "redrived is overloaded or shutting down; retry later"));
  }
  return reactor;
}

void AdminService::Audit(grpc::CallbackServerContext* context, absl::string_view rpc,
                         const std::string& what) const {
  spdlog::info("admin {} by {} from {}: {}", std::string(rpc), AdminAuth::Operator(context->client_metadata()),
               context->peer(), what);
}

absl::Status AdminService::CheckKnown(RedisCommander& redis, const v1::HandlerRef& handler) const {
  const HandlerKeys keys = MakeHandlerKeys(handler.channel(), handler.handler_id(),
                                           options_.key_style);
  const std::string field = RegistryField(handler.channel(), handler.handler_id());
  std::vector<RedisArgv> commands = {
      {"HEXISTS", kHandlersRegistryKey, field},
      {"EXISTS", keys.dlq_stream, keys.retry_stream},
      {"XINFO", "GROUPS", keys.stream}};
  absl::StatusOr<std::vector<RedisReply>> r = redis.Pipeline(commands);
  if (!r.ok()) return r.status();
  if ((*r)[0].is_error()) return (*r)[0].ErrorStatus();
  if ((*r)[0].integer == 1 || ((*r)[1].is_integer() && (*r)[1].integer > 0)) {
    return absl::OkStatus();
  }
  if (!GroupInfo((*r)[2], keys.group).empty()) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("no handler '", handler.handler_id(), "' on channel '",
                                          handler.channel(), "'"));
}

absl::StatusOr<v1::HandlerInfo> AdminService::Describe(
    RedisCommander& redis, const v1::HandlerRef& handler, const v1::Registered* registered,
    const std::vector<Dispatcher::HandlerSnapshot>& local) const {
  const HandlerKeys keys = MakeHandlerKeys(handler.channel(), handler.handler_id(),
                                           options_.key_style);
  const std::string field = RegistryField(handler.channel(), handler.handler_id());
  std::vector<RedisArgv> commands = {
      {"XINFO", "GROUPS", keys.stream},
      {"XINFO", "GROUPS", keys.retry_stream},
      {"XINFO", "CONSUMERS", keys.stream, keys.group},
      {"ZCARD", keys.due_zset},
      {"XLEN", keys.dlq_stream},
      {"XRANGE", keys.dlq_stream, "-", "+", "COUNT", "1"},
      {"HEXISTS", kPausedHandlersKey, field},
      {"TIME"}};
  absl::StatusOr<std::vector<RedisReply>> r = redis.Pipeline(commands);
  if (!r.ok()) return r.status();
  const std::vector<RedisReply>& rep = *r;
  v1::HandlerInfo info;
  *info.mutable_handler() = handler;
  if (registered != nullptr) {
    *info.mutable_names() = registered->names();
    *info.mutable_retry_policy() = registered->retry_policy();
    *info.mutable_dead_letter_policy() = registered->dead_letter_policy();
  } else {
    v1::RedisNames* n = info.mutable_names();
    n->set_stream(keys.stream);
    n->set_group(keys.group);
    n->set_retry_stream(keys.retry_stream);
    n->set_retry_group(keys.retry_group);
    n->set_dlq_stream(keys.dlq_stream);
  }
  // This daemon's consumer: the one its registered streams share (named with
  // their consumer_label), else the unlabelled name.
  std::string own = ConsumerName(handler.handler_id(), options_.instance_id);
  for (const Dispatcher::HandlerSnapshot& s : local) {
    if (s.channel == handler.channel() && s.handler_id == handler.handler_id()) own = s.consumer;
  }
  info.mutable_names()->set_consumer(own);
  const auto main = GroupInfo(rep[0], keys.group);
  const auto retry = GroupInfo(rep[1], keys.retry_group);
  info.set_pending(static_cast<uint64_t>(std::max<int64_t>(0, IntField(main, "pending", 0)) +
                                         std::max<int64_t>(0, IntField(retry, "pending", 0))));
  info.set_lag(main.empty() ? -1 : IntField(main, "lag", -1));
  const int64_t retry_lag = retry.empty() ? 0 : std::max<int64_t>(0, IntField(retry, "lag", 0));
  info.set_retry_depth(static_cast<uint64_t>(
      (rep[3].is_integer() ? rep[3].integer : 0) + retry_lag));
  info.set_dlq_depth(rep[4].is_integer() ? static_cast<uint64_t>(rep[4].integer) : 0);
  int64_t now_ms = absl::ToUnixMillis(absl::Now());
  if (rep[7].is_array() && rep[7].elements.size() == 2) {
    int64_t sec = 0, usec = 0;
    if (absl::SimpleAtoi(rep[7].elements[0].str, &sec) &&
        absl::SimpleAtoi(rep[7].elements[1].str, &usec)) {
      now_ms = sec * 1000 + usec / 1000;
    }
  }
  if (rep[5].is_array() && !rep[5].elements.empty() && !rep[5].elements[0].elements.empty()) {
    const int64_t oldest = EntryIdMillis(rep[5].elements[0].elements[0].str);
    info.set_oldest_dead_letter_age_ms(std::max<int64_t>(0, now_ms - oldest));
  }
  info.set_paused(rep[6].is_integer() && rep[6].integer == 1);
  if (rep[2].is_array()) {
    for (const RedisReply& c : rep[2].elements) {
      v1::ConsumerInfo* ci = info.add_consumers();
      for (size_t i = 0; i + 1 < c.elements.size(); i += 2) {
        const std::string& k = c.elements[i].str;
        const RedisReply& v = c.elements[i + 1];
        if (k == "name") ci->set_name(v.str);
        if (k == "pending") ci->set_pending(static_cast<uint64_t>(std::max<int64_t>(0, v.integer)));
        if (k == "idle") ci->set_idle_ms(v.integer);
      }
      ci->set_local(ci->name() == own);
    }
  }
  for (const Dispatcher::HandlerSnapshot& s : local) {
    if (s.channel == handler.channel() && s.handler_id == handler.handler_id()) {
      info.set_connected_streams(s.sessions);
    }
  }
  return info;
}

grpc::ServerUnaryReactor* AdminService::ListHandlers(grpc::CallbackServerContext* context,
                                                     const v1::ListHandlersRequest* request,
                                                     v1::ListHandlersResponse* response) {
  absl::Status valid =
      request->channel().empty() ? absl::OkStatus() : ValidateChannel(request->channel());
  return Serve(context, valid, [this, request, response](RedisCommander& redis) -> absl::Status {
    absl::StatusOr<RedisReply> all = redis.Command({"HGETALL", kHandlersRegistryKey});
    if (!all.ok()) return all.status();
    if (all->is_error()) return all->ErrorStatus();
    std::vector<v1::Registered> found;
    for (size_t i = 0; i + 1 < all->elements.size(); i += 2) {
      if (IsPresenceField(all->elements[i].str)) continue;  // a heartbeat, not a handler
      v1::Registered reg;
      if (!reg.ParseFromString(all->elements[i + 1].str)) continue;
      if (!request->channel().empty() && reg.channel() != request->channel()) continue;
      found.push_back(std::move(reg));
    }
    std::sort(found.begin(), found.end(), [](const v1::Registered& a, const v1::Registered& b) {
      return std::tie(a.channel(), a.handler_id()) < std::tie(b.channel(), b.handler_id());
    });
    const std::vector<Dispatcher::HandlerSnapshot> local = engine_.Snapshot();
    for (const v1::Registered& reg : found) {
      v1::HandlerRef ref;
      ref.set_channel(reg.channel());
      ref.set_handler_id(reg.handler_id());
      absl::StatusOr<v1::HandlerInfo> info = Describe(redis, ref, &reg, local);
      if (!info.ok()) return info.status();
      *response->add_handlers() = *std::move(info);
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminService::ListDeadLetters(grpc::CallbackServerContext* context,
                                                        const v1::ListDeadLettersRequest* request,
                                                        v1::ListDeadLettersResponse* response) {
  absl::Status valid = ValidateHandlerRef(request->handler(), "handler");
  if (valid.ok()) valid = ValidateListRequest(*request);
  return Serve(context, valid, [this, request, response](RedisCommander& redis) -> absl::Status {
    if (absl::Status s = CheckKnown(redis, request->handler()); !s.ok()) return s;
    const HandlerKeys keys = MakeHandlerKeys(request->handler().channel(),
                                             request->handler().handler_id(), options_.key_style);
    absl::StatusOr<v1::ListDeadLettersResponse> page =
        redrive::ListDeadLetters(redis, keys.dlq_stream, *request, options_.max_redrives);
    if (!page.ok()) return page.status();
    *response = *std::move(page);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminService::GetDeadLetter(grpc::CallbackServerContext* context,
                                                      const v1::GetDeadLetterRequest* request,
                                                      v1::DeadLetter* response) {
  absl::Status valid = ValidateHandlerRef(request->handler(), "handler");
  if (valid.ok() && !IsValidEntryId(request->entry_id())) {
    valid = absl::InvalidArgumentError(
        absl::StrCat("entry_id '", request->entry_id().substr(0, 64), "' is not an entry id"));
  }
  return Serve(context, valid, [this, request, response](RedisCommander& redis) -> absl::Status {
    if (absl::Status s = CheckKnown(redis, request->handler()); !s.ok()) return s;
    const HandlerKeys keys = MakeHandlerKeys(request->handler().channel(),
                                             request->handler().handler_id(), options_.key_style);
    absl::StatusOr<v1::DeadLetter> d =
        redrive::GetDeadLetter(redis, keys.dlq_stream, request->entry_id(), options_.max_redrives);
    if (!d.ok()) return d.status();
    *response = *std::move(d);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminService::CountDeadLetters(grpc::CallbackServerContext* context,
                                                         const v1::CountDeadLettersRequest* request,
                                                         v1::CountDeadLettersResponse* response) {
  absl::Status valid = ValidateHandlerRef(request->handler(), "handler");
  if (valid.ok()) valid = ValidateFilter(request->filter(), "filter");
  return Serve(context, valid, [this, request, response](RedisCommander& redis) -> absl::Status {
    if (absl::Status s = CheckKnown(redis, request->handler()); !s.ok()) return s;
    const HandlerKeys keys = MakeHandlerKeys(request->handler().channel(),
                                             request->handler().handler_id(), options_.key_style);
    absl::StatusOr<uint64_t> n = redrive::CountDeadLetters(redis, keys.dlq_stream, request->filter());
    if (!n.ok()) return n.status();
    response->set_count(*n);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminService::RedriveDeadLetters(
    grpc::CallbackServerContext* context, const v1::RedriveDeadLettersRequest* request,
    v1::RedriveDeadLettersResponse* response) {
  absl::Status valid = ValidateHandlerRef(request->handler(), "handler");
  const v1::RedriveTarget& target = request->target();
  if (valid.ok()) {
    switch (request->selection_case()) {
      case v1::RedriveDeadLettersRequest::kIds:
        valid = ValidateIds(request->ids().entry_ids(), "ids.entry_ids");
        break;
      case v1::RedriveDeadLettersRequest::kAll:
        if (!request->all()) valid = absl::InvalidArgumentError("all must be true when set");
        break;
      case v1::RedriveDeadLettersRequest::kFilter:
        valid = ValidateFilter(request->filter(), "filter");
        break;
      default:
        valid = absl::InvalidArgumentError("selection is required: ids, all or filter");
    }
  }
  if (valid.ok() && !v1::RedriveTarget::Kind_IsValid(target.kind())) {
    valid = absl::InvalidArgumentError(absl::StrCat("target.kind ", target.kind(), " is unknown"));
  }
  if (valid.ok()) {
    if (target.kind() == v1::RedriveTarget::TARGET_CHANNEL) {
      valid = ValidateChannel(target.channel(), "target.channel");
    } else if (!target.channel().empty()) {
      valid = absl::InvalidArgumentError(
          "target.channel is only for target.kind TARGET_CHANNEL");
    }
  }
  if (valid.ok() && request->reset_attempts() &&
      target.kind() != v1::RedriveTarget::TARGET_UNSPECIFIED &&
      target.kind() != v1::RedriveTarget::TARGET_HANDLER_RETRY) {
    valid = absl::InvalidArgumentError(
        "reset_attempts applies to the handler's retry target only (a channel target always "
        "starts at attempt 1)");
  }
  if (valid.ok() && request->rate_per_second() > kMaxRedriveRate) {
    valid = absl::InvalidArgumentError(absl::StrCat(
        "rate_per_second ", request->rate_per_second(), " is over ", kMaxRedriveRate));
  }
  return Serve(context, valid, [this, context, request,
                                response](RedisCommander& redis) -> absl::Status {
    const v1::HandlerRef& handler = request->handler();
    if (absl::Status s = CheckKnown(redis, handler); !s.ok()) return s;
    const HandlerKeys keys =
        MakeHandlerKeys(handler.channel(), handler.handler_id(), options_.key_style);
    RedriveJobSpec spec;
    spec.handler = handler;
    spec.target = request->target();
    if (spec.target.kind() == v1::RedriveTarget::TARGET_UNSPECIFIED) {
      spec.target.set_kind(v1::RedriveTarget::TARGET_HANDLER_RETRY);
    }
    spec.dlq_stream = keys.dlq_stream;
    switch (spec.target.kind()) {
      case v1::RedriveTarget::TARGET_SOURCE_CHANNEL:
        spec.target_stream = keys.stream;
        break;
      case v1::RedriveTarget::TARGET_CHANNEL:
        spec.target_stream = StreamKey(spec.target.channel(), options_.key_style);
        break;
      default:
        spec.target_stream = keys.retry_stream;
        spec.target_group = keys.retry_group;
    }
    spec.reset_attempts = request->reset_attempts();
    spec.rate_per_second = request->rate_per_second();
    spec.include_quarantined = request->include_quarantined();
    absl::StatusOr<RedisReply> type = redis.Command({"TYPE", spec.target_stream});
    if (!type.ok()) return type.status();
    if (type->str != "none" && type->str != "stream") {
      return absl::FailedPreconditionError(
          absl::StrCat("target key '", spec.target_stream, "' exists and is not a stream"));
    }
    if (spec.target_group.empty()) {
      // A channel nobody reads would swallow the dead letters: groups
      // created later start at its end.
      absl::StatusOr<RedisReply> groups = redis.Command({"XINFO", "GROUPS", spec.target_stream});
      if (!groups.ok()) return groups.status();
      if (groups->is_error() || groups->elements.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "no consumer group reads '", spec.target_stream,
            "': nothing would receive the redriven messages (register a handler first)"));
      }
    }

    // The selection, oldest first (ids: in the order given, once each).
    // A dry run decides per entry what would move.
    std::vector<std::string> order;
    uint64_t moving = 0, skipping = 0;
    auto would = [&](const std::string& id, bool skip) {
      auto* list = skip ? response->mutable_would_skip() : response->mutable_would_move();
      (skip ? skipping : moving) += 1;
      if (static_cast<size_t>(list->size()) < kMaxListedIds) *list->Add() = id;
    };
    auto decide = [&](const StreamEntry& e) {
      const v1::DeadLetter d = DecodeDeadLetter(e, 0, options_.max_redrives);
      would(e.id, d.quarantined() && !request->include_quarantined());
    };
    if (request->selection_case() == v1::RedriveDeadLettersRequest::kIds) {
      const std::vector<std::string> ids(request->ids().entry_ids().begin(),
                                         request->ids().entry_ids().end());
      std::vector<std::string> missing;
      absl::StatusOr<std::vector<StreamEntry>> found =
          FetchDeadLetters(redis, keys.dlq_stream, ids, &missing);
      if (!found.ok()) return found.status();
      absl::flat_hash_set<std::string> seen;
      for (const std::string& id : ids) {
        if (seen.insert(id).second) order.push_back(id);
      }
      if (request->dry_run()) {
        for (const StreamEntry& e : *found) decide(e);
        for (const std::string& id : missing) would(id, true);
      }
    } else {
      const v1::DeadLetterFilter filter = request->selection_case() ==
                                                  v1::RedriveDeadLettersRequest::kFilter
                                              ? request->filter()
                                              : v1::DeadLetterFilter();
      absl::StatusOr<std::vector<std::string>> found = SelectDeadLetters(
          redis, keys.dlq_stream, filter, kMaxJobSize,
          request->dry_run() ? std::function<void(const StreamEntry&)>(decide) : nullptr);
      if (!found.ok()) return found.status();
      order = *std::move(found);
    }
    if (request->dry_run()) {
      response->set_would_move_count(moving);
      response->set_would_skip_count(skipping);
      response->set_ids_truncated(moving > kMaxListedIds || skipping > kMaxListedIds);
      return absl::OkStatus();
    }
    absl::StatusOr<v1::RedriveJob> job = jobs_.Start(redis, spec, order);
    if (!job.ok()) return job.status();
    Audit(context, "RedriveDeadLetters",
          absl::StrCat(HandlerText(handler), " job=", job->job_id(), " entries=", order.size(),
                       " target=", v1::RedriveTarget::Kind_Name(spec.target.kind()), ":",
                       spec.target_stream, " reset_attempts=", spec.reset_attempts,
                       " rate=", spec.rate_per_second,
                       " include_quarantined=", spec.include_quarantined));
    *response->mutable_job() = *std::move(job);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminService::GetRedriveJob(grpc::CallbackServerContext* context,
                                                      const v1::GetRedriveJobRequest* request,
                                                      v1::RedriveJob* response) {
  const absl::Status valid = ValidateJobId(request->job_id());
  return Serve(context, valid, [this, request, response](RedisCommander& redis) -> absl::Status {
    absl::StatusOr<v1::RedriveJob> job = jobs_.Get(redis, request->job_id());
    if (!job.ok()) return job.status();
    *response = *std::move(job);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminService::CancelRedriveJob(grpc::CallbackServerContext* context,
                                                         const v1::CancelRedriveJobRequest* request,
                                                         v1::RedriveJob* response) {
  const absl::Status valid = ValidateJobId(request->job_id());
  return Serve(context, valid,
               [this, context, request, response](RedisCommander& redis) -> absl::Status {
                 Audit(context, "CancelRedriveJob", absl::StrCat("job=", request->job_id()));
                 absl::StatusOr<v1::RedriveJob> job = jobs_.Cancel(redis, request->job_id());
                 if (!job.ok()) return job.status();
                 *response = *std::move(job);
                 return absl::OkStatus();
               });
}

grpc::ServerUnaryReactor* AdminService::DeleteDeadLetters(
    grpc::CallbackServerContext* context, const v1::DeleteDeadLettersRequest* request,
    v1::DeleteDeadLettersResponse* response) {
  absl::Status valid = ValidateHandlerRef(request->handler(), "handler");
  if (valid.ok()) valid = ValidateIds(request->entry_ids(), "entry_ids");
  return Serve(context, valid, [this, context, request,
                                response](RedisCommander& redis) -> absl::Status {
    if (absl::Status s = CheckKnown(redis, request->handler()); !s.ok()) return s;
    const HandlerKeys keys = MakeHandlerKeys(request->handler().channel(),
                                             request->handler().handler_id(), options_.key_style);
    const std::vector<std::string> ids(request->entry_ids().begin(), request->entry_ids().end());
    std::vector<std::string> not_found;
    absl::StatusOr<uint64_t> n = redrive::DeleteDeadLetters(redis, keys.dlq_stream, ids, &not_found);
    if (!n.ok()) return n.status();
    Audit(context, "DeleteDeadLetters",
          absl::StrCat(HandlerText(request->handler()), " asked=", ids.size(), " deleted=", *n,
                       " ids=", absl::StrJoin(ids.begin(),
                                              ids.begin() + std::min<size_t>(ids.size(), 20), ","),
                       ids.size() > 20 ? ",..." : ""));
    response->set_deleted(*n);
    for (std::string& id : not_found) response->add_not_found(std::move(id));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminService::PurgeDeadLetters(grpc::CallbackServerContext* context,
                                                         const v1::PurgeDeadLettersRequest* request,
                                                         v1::PurgeDeadLettersResponse* response) {
  absl::Status valid = ValidateHandlerRef(request->handler(), "handler");
  return Serve(context, valid, [this, context, request,
                                response](RedisCommander& redis) -> absl::Status {
    if (absl::Status s = CheckKnown(redis, request->handler()); !s.ok()) return s;
    const HandlerKeys keys = MakeHandlerKeys(request->handler().channel(),
                                             request->handler().handler_id(), options_.key_style);
    absl::StatusOr<uint64_t> n =
        redrive::PurgeDeadLetters(redis, keys.dlq_stream, request->expected_count());
    Audit(context, "PurgeDeadLetters",
          absl::StrCat(HandlerText(request->handler()), " expected_count=", request->expected_count(),
                       " result=", n.ok() ? absl::StrCat("purged ", *n)
                                          : std::string(n.status().message())));
    if (!n.ok()) return n.status();
    response->set_purged(*n);
    return absl::OkStatus();
  });
}

absl::Status AdminService::SetPaused(RedisCommander& redis, const v1::HandlerRef& handler,
                                     bool paused, v1::HandlerInfo* response) {
  if (absl::Status s = CheckKnown(redis, handler); !s.ok()) return s;
  const std::string field = RegistryField(handler.channel(), handler.handler_id());
  absl::StatusOr<RedisReply> r =
      paused ? redis.Command({"HSET", kPausedHandlersKey, field,
                              absl::StrCat(absl::ToUnixMillis(absl::Now()))})
             : redis.Command({"HDEL", kPausedHandlersKey, field});
  if (!r.ok()) return r.status();
  if (r->is_error()) return r->ErrorStatus();
  engine_.SetPaused(handler.channel(), handler.handler_id(), paused);
  absl::StatusOr<RedisReply> reg = redis.Command({"HGET", kHandlersRegistryKey, field});
  v1::Registered registered;
  const bool have = reg.ok() && reg->is_string() && registered.ParseFromString(reg->str);
  absl::StatusOr<v1::HandlerInfo> info =
      Describe(redis, handler, have ? &registered : nullptr, engine_.Snapshot());
  if (!info.ok()) return info.status();
  *response = *std::move(info);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AdminService::PauseHandler(grpc::CallbackServerContext* context,
                                                     const v1::PauseHandlerRequest* request,
                                                     v1::HandlerInfo* response) {
  absl::Status valid = ValidateHandlerRef(request->handler(), "handler");
  return Serve(context, valid,
               [this, context, request, response](RedisCommander& redis) -> absl::Status {
                 Audit(context, "PauseHandler", HandlerText(request->handler()));
                 return SetPaused(redis, request->handler(), true, response);
               });
}

grpc::ServerUnaryReactor* AdminService::ResumeHandler(grpc::CallbackServerContext* context,
                                                      const v1::ResumeHandlerRequest* request,
                                                      v1::HandlerInfo* response) {
  absl::Status valid = ValidateHandlerRef(request->handler(), "handler");
  return Serve(context, valid,
               [this, context, request, response](RedisCommander& redis) -> absl::Status {
                 Audit(context, "ResumeHandler", HandlerText(request->handler()));
                 return SetPaused(redis, request->handler(), false, response);
               });
}

grpc::ServerUnaryReactor* AdminService::MigrateLegacyKeys(
    grpc::CallbackServerContext* context, const v1::MigrateLegacyKeysRequest* request,
    v1::MigrateLegacyKeysResponse* response) {
  return Serve(context, ValidateChannel(request->channel()),
               [this, context, request, response](RedisCommander& redis) -> absl::Status {
                 absl::StatusOr<v1::MigrateLegacyKeysResponse> r = redrive::MigrateLegacyKeys(
                     redis, request->channel(), options_.key_style, request->dry_run());
                 if (!request->dry_run()) {
                   std::string moved;
                   if (r.ok()) {
                     for (const v1::LegacyMigration& m : r->migrations()) {
                       absl::StrAppend(&moved, " ", m.handler_id(), "=", m.retry_entries());
                     }
                   }
                   Audit(context, "MigrateLegacyKeys",
                         absl::StrCat("channel=", request->channel(), " result=",
                                      r.ok() ? absl::StrCat("moved", moved)
                                             : std::string(r.status().message())));
                 }
                 if (!r.ok()) return r.status();
                 *response = *std::move(r);
                 return absl::OkStatus();
               });
}

grpc::ServerUnaryReactor* AdminService::DeleteHandler(grpc::CallbackServerContext* context,
                                                      const v1::DeleteHandlerRequest* request,
                                                      v1::DeleteHandlerResponse* response) {
  absl::Status valid = ValidateHandlerRef(request->handler(), "handler");
  if (valid.ok() && !request->force() &&
      (request->expected_retry_entries() != 0 || request->expected_dead_letters() != 0)) {
    valid = absl::InvalidArgumentError(
        "expected_retry_entries and expected_dead_letters apply only with force");
  }
  return Serve(context, valid, [this, context, request,
                                response](RedisCommander& redis) -> absl::Status {
    const v1::HandlerRef& handler = request->handler();
    if (absl::Status s = CheckKnown(redis, handler); !s.ok()) return s;
    DeleteHandlerOptions options;
    options.key_style = options_.key_style;
    options.instance_id = options_.instance_id;
    options.now = absl::Now();
    for (const Dispatcher::HandlerSnapshot& local : engine_.Snapshot()) {
      if (local.channel == handler.channel() && local.handler_id == handler.handler_id()) {
        options.connected_here = true;
      }
    }
    absl::StatusOr<v1::DeleteHandlerResponse> r = redrive::DeleteHandler(redis, *request, options);
    Audit(context, "DeleteHandler",
          absl::StrCat(HandlerText(handler), " force=", request->force(),
                       " expected_retry_entries=", request->expected_retry_entries(),
                       " expected_dead_letters=", request->expected_dead_letters(), " result=",
                       r.ok() ? absl::StrCat("deleted retry_entries=", r->retry_entries(),
                                             " dead_letters=", r->dead_letters(), " keys=",
                                             absl::StrJoin(r->deleted_keys(), ","), " groups=",
                                             absl::StrJoin(r->destroyed_groups(), ","))
                              : std::string(r.status().message())));
    if (!r.ok()) return r.status();
    *response = *std::move(r);
    return absl::OkStatus();
  });
}

}  // namespace redrive
