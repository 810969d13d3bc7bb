// RedriveJobs: redrive jobs (R-E2) — moving selected dead letters back to the
// handler's retry stream (default: only that handler sees them again) or to
// a channel, at a rate limit, with progress, cancellation and resumption.
//
// A job lives in Redis, so any daemon can report, cancel or resume it:
//   {redrive}:job:{id}      hash: spec, state, owner, heartbeat, cursor, counts
//   {redrive}:job:{id}:ids  list: the DLQ ids to process, fixed at creation
//   {redrive}:jobs          zset: job id → creation time
// Each id is processed by one RedriveStepScript call that, in one atomic
// step, writes the new entry, deletes the dead letter, counts it and
// advances the cursor — only while the caller owns the RUNNING job at that
// cursor. So a daemon killed mid-job loses nothing and duplicates nothing:
// the job keeps its RUNNING state and cursor, its heartbeat goes stale, and
// a daemon (this one restarted, or another) claims it after
// `takeover_after` and goes on from the cursor.
//
// Skipped: ids no longer in the DLQ, and quarantined entries (redriven
// `max_redrives` times) unless the job includes them. Failed: entries that
// cannot be rewritten (they stay in the DLQ).
//
// Thread-safe. Each running job has its own thread and Redis connection;
// one more thread looks for jobs to resume.
#ifndef REDRIVE_DAEMON_REDRIVE_JOBS_H_
#define REDRIVE_DAEMON_REDRIVE_JOBS_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/keys.h"
#include "daemon/metrics.h"
#include "daemon/redis/connection.h"
#include "redrive/v1/admin.pb.h"

namespace redrive {

// What a job moves and where.
struct RedriveJobSpec {
  v1::HandlerRef handler;
  v1::RedriveTarget target;  // kind never TARGET_UNSPECIFIED
  std::string dlq_stream;
  std::string target_stream;
  std::string target_group;  // "" unless the target is the handler's retry stream
  bool reset_attempts = false;
  uint32_t rate_per_second = 0;  // 0 = unlimited
  bool include_quarantined = false;
};

class RedriveJobs {
 public:
  struct Options {
    RedisConnectionOptions redis;
    std::string instance_id;
    uint32_t max_redrives = 5;
    // Jobs running on this daemon at once; more are RESOURCE_EXHAUSTED.
    size_t max_running = 8;
    absl::Duration heartbeat = absl::Seconds(1);
    // A RUNNING job whose heartbeat is older than this is resumed here.
    absl::Duration takeover_after = absl::Seconds(5);
    absl::Duration scan_interval = absl::Seconds(2);
    // Ended jobs are kept this long.
    absl::Duration retention = absl::Hours(24 * 7);
    // Counts redriven dead letters per handler (R-G2); null = not counted.
    Metrics* metrics = nullptr;
    // Steps in redrive_step's step-record form, each handed over to the job
    // hash afterwards (job_transition 'advance'): on a Redis Cluster, where
    // the job hash and the dead letters are in different slots. Set when
    // the address is a cluster (server.cc); tests set it on one server.
    bool step_records = false;
  };

  explicit RedriveJobs(Options options);
  // Stops every job thread; their jobs stay RUNNING in Redis and are
  // resumed by the next daemon that looks.
  ~RedriveJobs();

  // FAILED_PRECONDITION when this daemon cannot run `spec` as one atomic
  // move per dead letter: with step records (a Redis Cluster), the target
  // must be in the dead letters' slot (the handler's retry stream or its
  // source channel, which share its hash tag), not another channel's.
  absl::Status CheckTarget(const RedriveJobSpec& spec) const;
  // Creates a job over `ids` (in that order) on `redis` and starts it here.
  // RESOURCE_EXHAUSTED when max_running jobs run here already.
  absl::StatusOr<v1::RedriveJob> Start(RedisCommander& redis, const RedriveJobSpec& spec,
                                       const std::vector<std::string>& ids);
  // NOT_FOUND for an unknown (or expired) job.
  absl::StatusOr<v1::RedriveJob> Get(RedisCommander& redis, const std::string& job_id);
  // FAILED_PRECONDITION when the job already ended.
  absl::StatusOr<v1::RedriveJob> Cancel(RedisCommander& redis, const std::string& job_id);

  // A job id as this daemon makes them: 16 lower-case hex digits.
  static bool IsValidJobId(absl::string_view id);

 private:
  struct Running {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  void Run(std::string job_id, std::string owner);
  void ScanLoop();
  void ResumeStale(RedisCommander& redis);
  bool Launch(const std::string& job_id, const std::string& owner)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sleeps until `until` or Stop; false when stopping.
  bool SleepUntil(absl::Time until);

  const Options options_;
  std::string owner_;  // instance id + a per-process nonce

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, std::unique_ptr<Running>> running_ ABSL_GUARDED_BY(mu_);
  // Jobs being created by Start: they count against max_running already.
  size_t starting_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread scanner_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDRIVE_JOBS_H_
