#include "client/redrivectl/run.h"

#include <grpcpp/client_context.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/redrivectl/format.h"
#include "client/redrivectl/top.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "redrive/client.h"

#ifndef REDRIVE_VERSION
#define REDRIVE_VERSION "unknown"
#endif

namespace redrive::ctl {
namespace {

constexpr absl::Duration kJobPollInterval = absl::Milliseconds(200);

// Everything one command needs: options, output, the connection.
struct Context {
  const ParsedArgs& args;
  Io io;
  Interrupter& interrupter;
  std::unique_ptr<Client> client;
  // Admin metadata.
  std::string token;
  std::string operator_name;

  bool json() const { return args.global.json; }
};

int UsageError(Io io, const absl::Status& status) {
  io.err << "redrivectl: " << status.message() << "\n";
  return kExitUsage;
}

int RpcError(Io io, const absl::Status& status) {
  io.err << FormatError(status);
  return static_cast<int>(status.code());
}

// The daemon logs x-redrive-operator when it is 1..64 characters of
// printable ASCII without spaces ("unknown" otherwise): anything else is
// replaced by '_' and the name cut to 64.
std::string SanitizeOperator(absl::string_view v) {
  std::string out(v.substr(0, 64));
  for (char& c : out) {
    if (c < '!' || c > '~') c = '_';
  }
  return out;
}

// Reads the admin token from `source` (see ChooseTokenSource). Returns an
// exit code on failure.
std::optional<int> LoadToken(Context& ctx, const TokenSource& source) {
  if (source.kind == TokenSource::Kind::kEnvToken) ctx.token = source.token;
  if (source.kind == TokenSource::Kind::kFlagFile || source.kind == TokenSource::Kind::kEnvFile) {
    std::ifstream in(source.file, std::ios::binary);
    if (!in) {
      ctx.io.err << "redrivectl: cannot read " << source.Describe() << "\n";
      return kExitNoInput;
    }
    std::stringstream buf;
    buf << in.rdbuf();
    ctx.token = buf.str();
    while (!ctx.token.empty() && (ctx.token.back() == '\n' || ctx.token.back() == '\r')) {
      ctx.token.pop_back();
    }
    if (ctx.token.empty()) {
      ctx.io.err << "redrivectl: " << source.Describe() << " is empty\n";
      return kExitUsage;
    }
  }
  for (char c : ctx.token) {
    if (c < '!' || c > '~') {
      ctx.io.err << "redrivectl: " << source.Describe()
                 << ": the token must be printable ASCII without spaces\n";
      return kExitUsage;
    }
  }
  return std::nullopt;
}

// The PEM files named by the --tls-* flags. NOT_FOUND naming the flag and the
// file when one cannot be read (exit kExitNoInput).
absl::StatusOr<ClientTlsOptions> LoadTls(const GlobalOptions& global) {
  auto read = [](absl::string_view flag, const std::string& path,
                 std::string& pem) -> absl::Status {
    if (path.empty()) return absl::OkStatus();
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read --", flag, " '", path, "'"));
    std::stringstream buf;
    buf << in.rdbuf();
    pem = buf.str();
    return absl::OkStatus();
  };
  ClientTlsOptions tls;
  tls.server_name = global.tls_server_name;
  for (const absl::Status& s : {read("tls-ca", global.tls_ca, tls.root_certs),
                                read("tls-cert", global.tls_cert, tls.cert_chain),
                                read("tls-key", global.tls_key, tls.private_key)}) {
    if (!s.ok()) return s;
  }
  return tls;
}

void PrepareAdmin(const Context& ctx, grpc::ClientContext& call) {
  call.set_deadline(absl::ToChronoTime(absl::Now() + ctx.args.global.timeout));
  if (!ctx.token.empty()) call.AddMetadata("authorization", absl::StrCat("Bearer ", ctx.token));
  if (!ctx.operator_name.empty()) {
    call.AddMetadata("x-redrive-operator", SanitizeOperator(ctx.operator_name));
  }
}

template <typename Request, typename Response>
using AdminMethod = grpc::Status (v1::Admin::Stub::*)(grpc::ClientContext*, const Request&,
                                                      Response*);

template <typename Request, typename Response>
absl::StatusOr<Response> CallAdmin(Context& ctx, AdminMethod<Request, Response> method,
                                   const Request& request) {
  grpc::ClientContext call;
  PrepareAdmin(ctx, call);
  Response response;
  grpc::Status status = (ctx.client->admin().*method)(&call, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

// Prints `response` (JSON or `format`) and returns kExitOk, or reports the error.
template <typename Response, typename Format>
int Print(Context& ctx, const absl::StatusOr<Response>& response, Format format) {
  if (!response.ok()) return RpcError(ctx.io, response.status());
  if (ctx.json()) {
    ctx.io.out << ToJson(*response) << "\n";
  } else {
    ctx.io.out << format(*response);
  }
  return kExitOk;
}

template <typename Plan, typename Builder>
std::optional<Plan> Build(Context& ctx, Builder builder, int& exit_code) {
  absl::StatusOr<Plan> plan = builder(ctx.args);
  if (!plan.ok()) {
    exit_code = UsageError(ctx.io, plan.status());
    return std::nullopt;
  }
  return *std::move(plan);
}

int ListDeadLetters(Context& ctx) {
  int rc = kExitOk;
  std::optional<ListPlan> plan = Build<ListPlan>(ctx, BuildListDeadLetters, rc);
  if (!plan) return rc;
  if (!plan->all_pages) {
    return Print(ctx, CallAdmin(ctx, &v1::Admin::Stub::ListDeadLetters, plan->request),
                 FormatDeadLetters);
  }
  v1::ListDeadLettersResponse all;
  v1::ListDeadLettersRequest request = plan->request;
  for (;;) {
    absl::StatusOr<v1::ListDeadLettersResponse> page =
        CallAdmin(ctx, &v1::Admin::Stub::ListDeadLetters, request);
    if (!page.ok()) return RpcError(ctx.io, page.status());
    for (v1::DeadLetter& d : *page->mutable_dead_letters()) {
      *all.add_dead_letters() = std::move(d);
    }
    if (page->next_cursor().empty()) break;
    if (page->next_cursor() == request.cursor()) {
      ctx.io.err << "redrivectl: the daemon returned the same cursor twice; stopping\n";
      return static_cast<int>(absl::StatusCode::kInternal);
    }
    request.set_cursor(page->next_cursor());
  }
  return Print(ctx, absl::StatusOr<v1::ListDeadLettersResponse>(std::move(all)), FormatDeadLetters);
}

int ShowDeadLetter(Context& ctx) {
  int rc = kExitOk;
  std::optional<ShowPlan> plan = Build<ShowPlan>(ctx, BuildGetDeadLetter, rc);
  if (!plan) return rc;
  absl::StatusOr<v1::DeadLetter> d = CallAdmin(ctx, &v1::Admin::Stub::GetDeadLetter, plan->request);
  if (d.ok() && plan->raw) {
    ctx.io.out.write(d->payload().data(), static_cast<std::streamsize>(d->payload().size()));
    if (d->payload_truncated()) {
      ctx.io.err << "redrivectl: warning: the daemon returned a truncated payload ("
                 << d->payload().size() << " of " << d->payload_size() << " bytes)\n";
    }
    return kExitOk;
  }
  return Print(ctx, d, FormatDeadLetter);
}

bool Finished(v1::RedriveJob::State state) {
  return state == v1::RedriveJob::SUCCEEDED || state == v1::RedriveJob::CANCELLED ||
         state == v1::RedriveJob::FAILED;
}

int Redrive(Context& ctx) {
  int rc = kExitOk;
  std::optional<RedrivePlan> plan = Build<RedrivePlan>(ctx, BuildRedrive, rc);
  if (!plan) return rc;
  absl::StatusOr<v1::RedriveDeadLettersResponse> started =
      CallAdmin(ctx, &v1::Admin::Stub::RedriveDeadLetters, plan->request);
  if (!plan->wait || !started.ok() || !started->has_job()) {
    return Print(ctx, started, FormatRedrive);
  }
  v1::RedriveJob job = started->job();
  absl::Notification stop;
  ctx.interrupter.Set([&stop] {
    if (!stop.HasBeenNotified()) stop.Notify();
  });
  std::string last_progress;
  while (!Finished(job.state())) {
    std::string progress = FormatJobProgress(job);
    if (progress != last_progress) ctx.io.err << progress << std::flush;
    last_progress = std::move(progress);
    if (stop.WaitForNotificationWithTimeout(kJobPollInterval)) {
      ctx.interrupter.Clear();
      ctx.io.err << "redrivectl: stopped waiting; job " << job.job_id()
                 << " continues (redrivectl job status " << job.job_id() << ")\n";
      return kExitInterrupted;
    }
    v1::GetRedriveJobRequest get;
    get.set_job_id(job.job_id());
    absl::StatusOr<v1::RedriveJob> polled = CallAdmin(ctx, &v1::Admin::Stub::GetRedriveJob, get);
    if (!polled.ok()) {
      ctx.interrupter.Clear();
      return RpcError(ctx.io, polled.status());
    }
    job = *std::move(polled);
  }
  ctx.interrupter.Clear();
  ctx.io.err << FormatJobProgress(job);
  Print(ctx, absl::StatusOr<v1::RedriveJob>(job), FormatJob);
  if (job.state() != v1::RedriveJob::SUCCEEDED) {
    ctx.io.err << "redrivectl: job " << job.job_id() << " ended "
               << v1::RedriveJob::State_Name(job.state())
               << (job.error().empty() ? "" : absl::StrCat(": ", EscapeForLine(job.error())))
               << "\n";
    return kExitJobNotSucceeded;
  }
  return kExitOk;
}

int Publish(Context& ctx) {
  int rc = kExitOk;
  std::optional<PublishPlan> plan = Build<PublishPlan>(ctx, BuildPublish, rc);
  if (!plan) return rc;
  if (plan->source != PublishPlan::Source::kData) {
    std::stringstream buf;
    if (plan->source == PublishPlan::Source::kFile) {
      std::ifstream in(plan->file, std::ios::binary);
      if (!in) {
        ctx.io.err << "redrivectl: cannot read '" << plan->file << "'\n";
        return kExitNoInput;
      }
      buf << in.rdbuf();
    } else {
      buf << ctx.io.in.rdbuf();
    }
    plan->request.mutable_message()->set_payload(buf.str());
  }
  return Print(ctx, ctx.client->Publish(plan->request), FormatPublish);
}

// One consumer-group tail (--handler). Writes go through `mu_` so the interrupt hook can close the
// stream from the signal thread while the main thread reads.
class Tail {
 public:
  Tail(Context& ctx, TailPlan plan) : ctx_(ctx), plan_(std::move(plan)) {}

  int Run() {
    stream_ = ctx_.client->broker().Subscribe(&call_);
    ctx_.interrupter.Set([this] { Close(/*cancel_if_closed=*/true); });
    v1::SubscribeRequest reg;
    *reg.mutable_register_() = plan_.reg;
    {
      absl::MutexLock lock(&mu_);
      stream_->Write(reg);
    }
    v1::SubscribeResponse response;
    while (stream_->Read(&response)) {
      switch (response.kind_case()) {
        case v1::SubscribeResponse::kRegistered:
          ctx_.io.err << "redrivectl: tailing " << response.registered().channel() << " as "
                      << response.registered().handler_id()
                      << (response.registered().auto_ack() ? " (auto-ack)" : " (ack)") << "\n"
                      << std::flush;
          break;
        case v1::SubscribeResponse::kDeliveries:
          for (const v1::Delivery& d : response.deliveries().deliveries()) OnDelivery(d);
          break;
        case v1::SubscribeResponse::kDrain:
          ctx_.io.err << "redrivectl: the daemon is draining: "
                      << EscapeForLine(response.drain().reason()) << "\n";
          break;
        default:
          break;
      }
    }
    {
      // No writes (and no new watchdog) from here on.
      absl::MutexLock lock(&mu_);
      stream_done_ = true;
    }
    ctx_.interrupter.Clear();
    const grpc::Status status = stream_->Finish();
    finished_.Notify();
    if (watchdog_.joinable()) watchdog_.join();
    absl::MutexLock lock(&mu_);
    if (status.ok() || closing_) return kExitOk;
    return RpcError(ctx_.io, FromGrpcStatus(status));
  }

 private:
  void OnDelivery(const v1::Delivery& d) {
    absl::MutexLock lock(&mu_);
    // After Close, deliveries are not printed: in --ack mode they could not
    // be acknowledged any more.
    if (closing_ || (plan_.count > 0 && printed_ >= plan_.count)) return;
    if (ctx_.json()) {
      ctx_.io.out << ToJson(d) << "\n";
    } else {
      ctx_.io.out << FormatDelivery(d);
    }
    ctx_.io.out.flush();
    ++printed_;
    const bool last = plan_.count > 0 && printed_ == plan_.count;
    if (plan_.ack) {
      if (last) WriteStopLocked();
      v1::SubscribeRequest ack;
      v1::Verb* v = ack.mutable_verbs()->add_verbs();
      v->set_delivery_id(d.delivery_id());
      v->mutable_ack();
      stream_->Write(ack);
    }
    if (last) CloseLocked();
  }

  // Stop + half-close, then let the daemon finish the stream (so batched
  // ACKs are flushed); cancel if it has not within --timeout.
  void Close(bool cancel_if_closed) {
    absl::MutexLock lock(&mu_);
    if (closing_) {
      if (cancel_if_closed) call_.TryCancel();
      return;
    }
    CloseLocked();
  }

  void WriteStopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stop_sent_) return;
    v1::SubscribeRequest stop;
    stop.mutable_stop();
    stream_->Write(stop);
    stop_sent_ = true;
  }

  void CloseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    closing_ = true;
    if (stream_done_) return;
    WriteStopLocked();
    stream_->WritesDone();
    const absl::Duration grace = ctx_.args.global.timeout;
    watchdog_ = std::thread([this, grace] {
      if (!finished_.WaitForNotificationWithTimeout(grace)) call_.TryCancel();
    });
  }

  Context& ctx_;
  const TailPlan plan_;
  grpc::ClientContext call_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SubscribeRequest, v1::SubscribeResponse>> stream_;
  absl::Notification finished_;
  std::thread watchdog_;
  absl::Mutex mu_;
  uint64_t printed_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool stream_done_ ABSL_GUARDED_BY(mu_) = false;
};

// A plain tail (Broker.Tail): the daemon reads the channel without a
// consumer group and ends the call after --count entries; SIGINT cancels it.
int RunPlainTail(Context& ctx, const TailPlan& plan) {
  grpc::ClientContext call;
  std::unique_ptr<grpc::ClientReader<v1::TailResponse>> reader =
      ctx.client->broker().Tail(&call, plan.request);
  std::atomic<bool> interrupted{false};
  ctx.interrupter.Set([&call, &interrupted] {
    interrupted = true;
    call.TryCancel();
  });
  v1::TailResponse response;
  while (reader->Read(&response)) {
    if (response.has_started()) {
      ctx.io.err << "redrivectl: tailing " << plan.request.channel() << " after "
                 << response.started().after_id() << " (no consumer group)\n"
                 << std::flush;
      continue;
    }
    if (!response.has_delivery()) continue;
    if (ctx.json()) {
      ctx.io.out << ToJson(response.delivery()) << "\n";
    } else {
      ctx.io.out << FormatDelivery(response.delivery());
    }
    ctx.io.out.flush();
  }
  const grpc::Status status = reader->Finish();
  ctx.interrupter.Clear();
  if (status.ok() || interrupted) return kExitOk;
  return RpcError(ctx.io, FromGrpcStatus(status));
}

int RunTail(Context& ctx) {
  int rc = kExitOk;
  std::optional<TailPlan> plan = Build<TailPlan>(ctx, BuildTail, rc);
  if (!plan) return rc;
  if (!plan->group) return RunPlainTail(ctx, *plan);
  Tail tail(ctx, *std::move(plan));
  return tail.Run();
}

// grpc.health.v1.Health/Check: prints the status; exit 0 only for SERVING,
// kExitNotServing for any other answer, the gRPC status code when there is
// none (UNAVAILABLE: nothing listens; NOT_FOUND: unknown service).
int Health(Context& ctx) {
  int rc = kExitOk;
  auto request = Build<grpc::health::v1::HealthCheckRequest>(ctx, BuildHealthCheck, rc);
  if (!request) return rc;
  std::unique_ptr<grpc::health::v1::Health::Stub> stub =
      grpc::health::v1::Health::NewStub(ctx.client->channel());
  grpc::ClientContext call;
  call.set_deadline(absl::ToChronoTime(absl::Now() + ctx.args.global.timeout));
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&call, *request, &response);
  if (!status.ok()) return RpcError(ctx.io, FromGrpcStatus(status));
  if (ctx.json()) {
    ctx.io.out << ToJson(response) << "\n";
  } else {
    ctx.io.out << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
               << "\n";
  }
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                             : kExitNotServing;
}

int Top(Context& ctx) {
  int rc = kExitOk;
  std::optional<TopPlan> plan = Build<TopPlan>(ctx, BuildTop, rc);
  if (!plan) return rc;
  TopSource source;
  source.list_handlers = [&ctx, &plan] {
    return CallAdmin(ctx, &v1::Admin::Stub::ListHandlers, plan->request);
  };
  source.ready = [&ctx] { return ctx.client->Serving("readiness"); };
  return RunTop(*plan, ctx.args.global.addr, source, TopTerminal{STDIN_FILENO, STDOUT_FILENO},
                ctx.io, ctx.interrupter);
}

int Dispatch(Context& ctx) {
  const std::string& name = ctx.args.command->name;
  int rc = kExitOk;
  using Stub = v1::Admin::Stub;
  if (name == "handlers") {
    auto r = Build<v1::ListHandlersRequest>(ctx, BuildListHandlers, rc);
    return r ? Print(ctx, CallAdmin(ctx, &Stub::ListHandlers, *r), FormatHandlers) : rc;
  }
  if (name == "handlers delete") {
    auto r = Build<v1::DeleteHandlerRequest>(ctx, BuildDeleteHandler, rc);
    return r ? Print(ctx, CallAdmin(ctx, &Stub::DeleteHandler, *r), FormatDeleteHandler) : rc;
  }
  if (name == "dlq list") return ListDeadLetters(ctx);
  if (name == "dlq show") return ShowDeadLetter(ctx);
  if (name == "dlq count") {
    auto r = Build<v1::CountDeadLettersRequest>(ctx, BuildCountDeadLetters, rc);
    return r ? Print(ctx, CallAdmin(ctx, &Stub::CountDeadLetters, *r), FormatCount) : rc;
  }
  if (name == "dlq redrive") return Redrive(ctx);
  if (name == "dlq delete") {
    auto r = Build<v1::DeleteDeadLettersRequest>(ctx, BuildDelete, rc);
    return r ? Print(ctx, CallAdmin(ctx, &Stub::DeleteDeadLetters, *r), FormatDelete) : rc;
  }
  if (name == "dlq purge") {
    auto r = Build<v1::PurgeDeadLettersRequest>(ctx, BuildPurge, rc);
    return r ? Print(ctx, CallAdmin(ctx, &Stub::PurgeDeadLetters, *r), FormatPurge) : rc;
  }
  if (name == "job status" || name == "job cancel") {
    auto id = Build<std::string>(ctx, BuildJobId, rc);
    if (!id) return rc;
    if (name == "job status") {
      v1::GetRedriveJobRequest r;
      r.set_job_id(*id);
      return Print(ctx, CallAdmin(ctx, &Stub::GetRedriveJob, r), FormatJob);
    }
    v1::CancelRedriveJobRequest r;
    r.set_job_id(*id);
    return Print(ctx, CallAdmin(ctx, &Stub::CancelRedriveJob, r), FormatJob);
  }
  if (name == "pause" || name == "resume") {
    auto ref = Build<v1::HandlerRef>(ctx, BuildHandlerRef, rc);
    if (!ref) return rc;
    if (name == "pause") {
      v1::PauseHandlerRequest r;
      *r.mutable_handler() = *ref;
      return Print(ctx, CallAdmin(ctx, &Stub::PauseHandler, r), FormatHandler);
    }
    v1::ResumeHandlerRequest r;
    *r.mutable_handler() = *ref;
    return Print(ctx, CallAdmin(ctx, &Stub::ResumeHandler, r), FormatHandler);
  }
  if (name == "migrate-legacy") {
    auto r = Build<v1::MigrateLegacyKeysRequest>(ctx, BuildMigrate, rc);
    return r ? Print(ctx, CallAdmin(ctx, &Stub::MigrateLegacyKeys, *r), FormatMigrate) : rc;
  }
  if (name == "publish") return Publish(ctx);
  if (name == "tail") return RunTail(ctx);
  if (name == "health") return Health(ctx);
  if (name == "top") return Top(ctx);
  // Every entry of Commands() is handled above.
  std::cerr << "redrivectl: internal error: no handler for '" << name << "'\n";
  std::abort();
}

}  // namespace

void Interrupter::Set(std::function<void()> hook) {
  absl::MutexLock lock(&mu_);
  hook_ = std::move(hook);
}

void Interrupter::Clear() {
  absl::MutexLock lock(&mu_);
  hook_ = nullptr;
}

bool Interrupter::Interrupt() {
  absl::MutexLock lock(&mu_);
  if (!hook_) return false;
  hook_();
  return true;
}

int Run(const std::vector<std::string>& args, const Environment& env, Io io,
        Interrupter& interrupter) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, env);
  if (!parsed.ok()) return UsageError(io, parsed.status());
  if (parsed->help) {
    io.out << (parsed->command != nullptr ? CommandHelp(*parsed->command) : TopLevelHelp());
    return kExitOk;
  }
  if (parsed->version) {
    io.out << "redrivectl " << REDRIVE_VERSION << "\n";
    return kExitOk;
  }
  Context ctx{*parsed, io, interrupter, nullptr, "", parsed->global.operator_name};
  const std::string& name = parsed->command->name;
  const bool admin = name != "publish" && name != "tail" && name != "health";
  const TokenSource token_source = ChooseTokenSource(parsed->global, env);
  if (admin) {
    if (std::optional<int> rc = LoadToken(ctx, token_source)) return *rc;
  }
  ClientOptions options;
  options.call_timeout = parsed->global.timeout;
  if (parsed->global.tls()) {
    absl::StatusOr<ClientTlsOptions> tls = LoadTls(parsed->global);
    if (!tls.ok()) {
      io.err << "redrivectl: " << tls.status().message() << "\n";
      return kExitNoInput;
    }
    options.tls = *std::move(tls);
  }
  ctx.client = Client::Connect(parsed->global.addr, options);
  const int rc = Dispatch(ctx);
  io.out.flush();
  // The exit code is the gRPC status code: 16 is UNAUTHENTICATED.
  if (admin && rc == static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    io.err << UnauthenticatedHint(token_source);
  }
  return rc;
}

}  // namespace redrive::ctl
