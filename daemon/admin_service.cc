#include "daemon/admin_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/dead_letters.h"
#include "daemon/grpc_status.h"
#include "daemon/handler_deletion.h"
#include "daemon/legacy_migration.h"
#include "daemon/logging.h"

namespace redrive {
namespace {

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

absl::Status ValidateJobId(const std::string& id) {
  if (RedriveJobs::IsValidJobId(id)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("job_id '", id.substr(0, 64), "' is not a job id (16 hex digits)"));
}

absl::Status ValidateRedriveRequest(const v1::RedriveDeadLettersRequest& request) {
  absl::Status valid = ValidateHandlerRef(request.handler(), "handler");
  const v1::RedriveTarget& target = request.target();
  if (valid.ok()) {
    switch (request.selection_case()) {
      case v1::RedriveDeadLettersRequest::kIds:
        valid = ValidateIds(request.ids().entry_ids(), "ids.entry_ids");
        break;
      case v1::RedriveDeadLettersRequest::kAll:
        if (!request.all()) valid = absl::InvalidArgumentError("all must be true when set");
        break;
      case v1::RedriveDeadLettersRequest::kFilter:
        valid = ValidateFilter(request.filter(), "filter");
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
      valid = absl::InvalidArgumentError("target.channel is only for target.kind TARGET_CHANNEL");
    }
  }
  if (valid.ok() && request.reset_attempts() &&
      target.kind() != v1::RedriveTarget::TARGET_UNSPECIFIED &&
      target.kind() != v1::RedriveTarget::TARGET_HANDLER_RETRY) {
    valid = absl::InvalidArgumentError(
        "reset_attempts applies to the handler's retry target only (a channel target always "
        "starts at attempt 1)");
  }
  if (valid.ok() && request.rate_per_second() > kMaxRedriveRate) {
    valid = absl::InvalidArgumentError(
        absl::StrCat("rate_per_second ", request.rate_per_second(), " is over ", kMaxRedriveRate));
  }
  return valid;
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
    LogWarn(LogFields().Peer(context->peer()).Reason(auth.error_message()), "admin call refused");
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
  LogInfo(LogFields().Rpc(rpc).Peer(context->peer()), "admin {} by {}: {}", std::string(rpc),
          AdminAuth::Operator(context->client_metadata()), what);
}

std::vector<LocalHandler> AdminService::LocalHandlers() const {
  std::vector<LocalHandler> out;
  for (const Dispatcher::HandlerSnapshot& s : engine_.Snapshot()) {
    out.push_back(LocalHandler{s.channel, s.handler_id, s.consumer, s.sessions,
                               static_cast<uint32_t>(std::min<uint64_t>(s.in_flight, UINT32_MAX))});
  }
  return out;
}

CatalogueOptions AdminService::catalogue() const {
  return CatalogueOptions{options_.key_style, options_.instance_id, options_.metrics};
}

std::string AdminService::DlqOf(const v1::HandlerRef& handler) const {
  return MakeHandlerKeys(handler.channel(), handler.handler_id(), options_.key_style).dlq_stream;
}

grpc::ServerUnaryReactor* AdminService::ListHandlers(grpc::CallbackServerContext* context,
                                                     const v1::ListHandlersRequest* request,
                                                     v1::ListHandlersResponse* response) {
  absl::Status valid =
      request->channel().empty() ? absl::OkStatus() : ValidateChannel(request->channel());
  return Serve(context, valid, [this, request, response](RedisCommander& redis) -> absl::Status {
    absl::StatusOr<std::vector<v1::HandlerInfo>> handlers =
        redrive::ListHandlers(redis, request->channel(), LocalHandlers(), catalogue());
    if (!handlers.ok()) return handlers.status();
    for (v1::HandlerInfo& info : *handlers) *response->add_handlers() = std::move(info);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminService::ListDeadLetters(grpc::CallbackServerContext* context,
                                                        const v1::ListDeadLettersRequest* request,
                                                        v1::ListDeadLettersResponse* response) {
  absl::Status valid = ValidateHandlerRef(request->handler(), "handler");
  if (valid.ok()) valid = ValidateListRequest(*request);
  return Serve(context, valid, [this, request, response](RedisCommander& redis) -> absl::Status {
    if (absl::Status s = CheckKnown(redis, request->handler(), options_.key_style); !s.ok()) {
      return s;
    }
    absl::StatusOr<v1::ListDeadLettersResponse> page =
        redrive::ListDeadLetters(redis, DlqOf(request->handler()), *request, options_.max_redrives);
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
    if (absl::Status s = CheckKnown(redis, request->handler(), options_.key_style); !s.ok()) {
      return s;
    }
    absl::StatusOr<v1::DeadLetter> d = redrive::GetDeadLetter(
        redis, DlqOf(request->handler()), request->entry_id(), options_.max_redrives);
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
    if (absl::Status s = CheckKnown(redis, request->handler(), options_.key_style); !s.ok()) {
      return s;
    }
    absl::StatusOr<uint64_t> n =
        redrive::CountDeadLetters(redis, DlqOf(request->handler()), request->filter());
    if (!n.ok()) return n.status();
    response->set_count(*n);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminService::RedriveDeadLetters(
    grpc::CallbackServerContext* context, const v1::RedriveDeadLettersRequest* request,
    v1::RedriveDeadLettersResponse* response) {
  return Serve(
      context, ValidateRedriveRequest(*request),
      [this, context, request, response](RedisCommander& redis) -> absl::Status {
        if (absl::Status s = CheckKnown(redis, request->handler(), options_.key_style); !s.ok()) {
          return s;
        }
        absl::StatusOr<RedriveJobSpec> spec =
            PlanRedriveTarget(redis, *request, options_.key_style);
        if (!spec.ok()) return spec.status();
        if (absl::Status s = jobs_.CheckTarget(*spec); !s.ok()) return s;
        absl::StatusOr<std::vector<std::string>> ids =
            SelectForRedrive(redis, *request, spec->dlq_stream, options_.max_redrives,
                             request->dry_run() ? response : nullptr);
        if (!ids.ok() || request->dry_run()) return ids.status();
        absl::StatusOr<v1::RedriveJob> job = jobs_.Start(redis, *spec, *ids);
        if (!job.ok()) return job.status();
        Audit(context, "RedriveDeadLetters",
              absl::StrCat(HandlerText(request->handler()), " job=", job->job_id(),
                           " entries=", ids->size(),
                           " target=", v1::RedriveTarget::Kind_Name(spec->target.kind()), ":",
                           spec->target_stream, " reset_attempts=", spec->reset_attempts,
                           " rate=", spec->rate_per_second,
                           " include_quarantined=", spec->include_quarantined));
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
  return Serve(
      context, valid, [this, context, request, response](RedisCommander& redis) -> absl::Status {
        if (absl::Status s = CheckKnown(redis, request->handler(), options_.key_style); !s.ok()) {
          return s;
        }
        const std::vector<std::string> ids(request->entry_ids().begin(),
                                           request->entry_ids().end());
        std::vector<std::string> not_found;
        absl::StatusOr<uint64_t> n =
            redrive::DeleteDeadLetters(redis, DlqOf(request->handler()), ids, &not_found);
        if (!n.ok()) return n.status();
        Audit(context, "DeleteDeadLetters",
              absl::StrCat(
                  HandlerText(request->handler()), " asked=", ids.size(), " deleted=", *n, " ids=",
                  absl::StrJoin(ids.begin(), ids.begin() + std::min<size_t>(ids.size(), 20), ","),
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
  return Serve(
      context, valid, [this, context, request, response](RedisCommander& redis) -> absl::Status {
        if (absl::Status s = CheckKnown(redis, request->handler(), options_.key_style); !s.ok()) {
          return s;
        }
        absl::StatusOr<uint64_t> n =
            redrive::PurgeDeadLetters(redis, DlqOf(request->handler()), request->expected_count());
        Audit(
            context, "PurgeDeadLetters",
            absl::StrCat(HandlerText(request->handler()),
                         " expected_count=", request->expected_count(), " result=",
                         n.ok() ? absl::StrCat("purged ", *n) : std::string(n.status().message())));
        if (!n.ok()) return n.status();
        response->set_purged(*n);
        return absl::OkStatus();
      });
}

absl::Status AdminService::SetPaused(RedisCommander& redis, const v1::HandlerRef& handler,
                                     bool paused, v1::HandlerInfo* response) {
  if (absl::Status s = RecordPaused(redis, handler, paused, absl::Now(), options_.key_style);
      !s.ok()) {
    return s;
  }
  engine_.SetPaused(handler.channel(), handler.handler_id(), paused);
  absl::StatusOr<v1::HandlerInfo> info =
      DescribeHandler(redis, handler, LocalHandlers(), catalogue());
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
  return Serve(
      context, valid, [this, context, request, response](RedisCommander& redis) -> absl::Status {
        const v1::HandlerRef& handler = request->handler();
        if (absl::Status s = CheckKnown(redis, handler, options_.key_style); !s.ok()) return s;
        DeleteHandlerOptions options;
        options.key_style = options_.key_style;
        options.instance_id = options_.instance_id;
        options.now = absl::Now();
        for (const Dispatcher::HandlerSnapshot& local : engine_.Snapshot()) {
          if (local.channel == handler.channel() && local.handler_id == handler.handler_id()) {
            options.connected_here = true;
          }
        }
        absl::StatusOr<v1::DeleteHandlerResponse> r =
            redrive::DeleteHandler(redis, *request, options);
        Audit(context, "DeleteHandler",
              absl::StrCat(HandlerText(handler), " force=", request->force(),
                           " expected_retry_entries=", request->expected_retry_entries(),
                           " expected_dead_letters=", request->expected_dead_letters(), " result=",
                           r.ok()
                               ? absl::StrCat("deleted retry_entries=", r->retry_entries(),
                                              " dead_letters=", r->dead_letters(),
                                              " keys=", absl::StrJoin(r->deleted_keys(), ","),
                                              " groups=", absl::StrJoin(r->destroyed_groups(), ","))
                               : std::string(r.status().message())));
        if (!r.ok()) return r.status();
        *response = *std::move(r);
        return absl::OkStatus();
      });
}

}  // namespace redrive
