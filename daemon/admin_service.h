// AdminService: the gRPC adapter for redrive.v1.Admin (R-E1..R-E6, R-A5).
//
// Each RPC checks the bearer token (AdminAuth) and validates its request on
// the gRPC thread, then does its Redis work on a RedisExecutor thread (the
// reaction never blocks). Statuses: INVALID_ARGUMENT for a bad field (named),
// NOT_FOUND for an unknown handler, dead letter or job, FAILED_PRECONDITION
// (a purge whose expected count differs, cancelling an ended job, a target
// key that is not a stream, deleting a connected handler or one whose
// entries were not confirmed), RESOURCE_EXHAUSTED (too many jobs or matches,
// work queue full), UNAVAILABLE (Redis), UNAUTHENTICATED (token).
//
// The work itself is domain code: handler_catalogue.h (known handlers,
// descriptions, pausing), handler_deletion.h, dead_letters.h, redrive_plan.h
// and redrive_jobs.h, legacy_migration.h. Destructive calls are logged with
// their parameters, the operator (`x-redrive-operator`) and the peer — never
// payloads.
//
// Thread-safe.
#ifndef REDRIVE_DAEMON_ADMIN_SERVICE_H_
#define REDRIVE_DAEMON_ADMIN_SERVICE_H_

#include <functional>
#include <string>

#include "daemon/admin_auth.h"
#include "daemon/delivery_engine.h"
#include "daemon/handler_catalogue.h"
#include "daemon/keys.h"
#include "daemon/redis/executor.h"
#include "daemon/redrive_jobs.h"
#include "daemon/redrive_plan.h"
#include "redrive/v1/admin.grpc.pb.h"

namespace redrive {

inline constexpr uint32_t kMaxRedriveRate = 100000;

class AdminService final : public v1::Admin::CallbackService {
 public:
  struct Options {
    KeyStyle key_style = KeyStyle::kEggAI;
    std::string instance_id;
    bool auth_disabled = false;
    std::string token;
    uint32_t max_redrives = 5;
    // This daemon's counters, reported in HandlerInfo.counters; may be null.
    const Metrics* metrics = nullptr;
  };

  // Borrows the rest; they must outlive the gRPC server.
  AdminService(Options options, RedisExecutor& executor, DeliveryEngine& engine, RedriveJobs& jobs);

  grpc::ServerUnaryReactor* ListHandlers(grpc::CallbackServerContext* context,
                                         const v1::ListHandlersRequest* request,
                                         v1::ListHandlersResponse* response) override;
  grpc::ServerUnaryReactor* ListDeadLetters(grpc::CallbackServerContext* context,
                                            const v1::ListDeadLettersRequest* request,
                                            v1::ListDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* GetDeadLetter(grpc::CallbackServerContext* context,
                                          const v1::GetDeadLetterRequest* request,
                                          v1::DeadLetter* response) override;
  grpc::ServerUnaryReactor* CountDeadLetters(grpc::CallbackServerContext* context,
                                             const v1::CountDeadLettersRequest* request,
                                             v1::CountDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* RedriveDeadLetters(grpc::CallbackServerContext* context,
                                               const v1::RedriveDeadLettersRequest* request,
                                               v1::RedriveDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* GetRedriveJob(grpc::CallbackServerContext* context,
                                          const v1::GetRedriveJobRequest* request,
                                          v1::RedriveJob* response) override;
  grpc::ServerUnaryReactor* CancelRedriveJob(grpc::CallbackServerContext* context,
                                             const v1::CancelRedriveJobRequest* request,
                                             v1::RedriveJob* response) override;
  grpc::ServerUnaryReactor* DeleteDeadLetters(grpc::CallbackServerContext* context,
                                              const v1::DeleteDeadLettersRequest* request,
                                              v1::DeleteDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* PurgeDeadLetters(grpc::CallbackServerContext* context,
                                             const v1::PurgeDeadLettersRequest* request,
                                             v1::PurgeDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* PauseHandler(grpc::CallbackServerContext* context,
                                         const v1::PauseHandlerRequest* request,
                                         v1::HandlerInfo* response) override;
  grpc::ServerUnaryReactor* ResumeHandler(grpc::CallbackServerContext* context,
                                          const v1::ResumeHandlerRequest* request,
                                          v1::HandlerInfo* response) override;
  grpc::ServerUnaryReactor* MigrateLegacyKeys(grpc::CallbackServerContext* context,
                                              const v1::MigrateLegacyKeysRequest* request,
                                              v1::MigrateLegacyKeysResponse* response) override;
  // See handler_catalogue.h. FAILED_PRECONDITION while connected (here or on
  // another daemon) or while entries remain without a matching force.
  grpc::ServerUnaryReactor* DeleteHandler(grpc::CallbackServerContext* context,
                                          const v1::DeleteHandlerRequest* request,
                                          v1::DeleteHandlerResponse* response) override;

 private:
  using Work = std::function<absl::Status(RedisCommander&)>;
  // Auth, then `validate` on this thread, then `work` on an executor thread.
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* context, absl::Status validated,
                                  Work work);
  // This daemon's handlers (DeliveryEngine::Snapshot), for the catalogue.
  std::vector<LocalHandler> LocalHandlers() const;
  CatalogueOptions catalogue() const;
  // The handler's DLQ stream.
  std::string DlqOf(const v1::HandlerRef& handler) const;
  absl::Status SetPaused(RedisCommander& redis, const v1::HandlerRef& handler, bool paused,
                         v1::HandlerInfo* response);
  void Audit(grpc::CallbackServerContext* context, absl::string_view rpc,
             const std::string& what) const;

  const Options options_;
  const AdminAuth auth_;
  RedisExecutor& executor_;
  DeliveryEngine& engine_;
  RedriveJobs& jobs_;
};

// INVALID_ARGUMENT naming `field` unless `handler` names a valid channel and
// handler id.
absl::Status ValidateHandlerRef(const v1::HandlerRef& handler, absl::string_view field);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ADMIN_SERVICE_H_
