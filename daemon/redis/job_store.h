// The Redis records of redrive jobs (redrive_jobs.h describes them):
// creating a job's hash, id list and index entry in one transaction, and
// reading the states of many jobs in one round trip. The job's other reads
// (HGetAll, LRange, ZMembers) and its scripts (job_transition,
// redrive_step) need nothing job-specific here.
//
// Thread-safe: free functions over the caller's connection.
#ifndef REDRIVE_DAEMON_REDIS_JOB_STORE_H_
#define REDRIVE_DAEMON_REDIS_JOB_STORE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "daemon/redis/commander.h"
#include "daemon/redis/keyspace.h"

namespace redrive {

struct NewJobRecord {
  std::string job_id;
  std::string hash_key;   // RedriveJobKey(job_id): gets `fields`
  std::string ids_key;    // RedriveJobIdsKey(job_id): gets `ids`, in order
  std::string index_key;  // kRedriveJobsKey: gets job_id scored `created_ms`
  int64_t created_ms = 0;
  HashFields fields;
  std::vector<std::string> ids;
};

// Writes the record in one MULTI/EXEC: the job exists whole or not at all.
absl::Status CreateJobRecord(RedisCommander& redis, const NewJobRecord& record);

// HGET hash_key field for each of `hash_keys`, in one round trip: nullopt
// for a missing hash (an expired job).
absl::StatusOr<std::vector<std::optional<std::string>>> ReadJobField(
    RedisCommander& redis, const std::vector<std::string>& hash_keys, const std::string& field);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_JOB_STORE_H_
