#include "daemon/redrive_jobs.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/dead_letters.h"
#include "daemon/logging.h"
#include "daemon/redis/cluster_slots.h"
#include "daemon/redis/connect.h"
#include "daemon/redis/job_store.h"
#include "daemon/redis/keyspace.h"
#include "daemon/redis/script_results.h"
#include "daemon/redis/scripts.h"
#include "daemon/stream_entry.h"

namespace redrive {
namespace {

constexpr size_t kIdsPerRead = 100;
// Field bytes one step sends at most (Redis runs a script alone).
constexpr size_t kMaxStepBytes = 4u << 20;
constexpr absl::Duration kErrorPause = absl::Milliseconds(500);

using Hash = absl::flat_hash_map<std::string, std::string>;

absl::StatusOr<Hash> ReadHash(RedisCommander& redis, const std::string& key) {
  absl::StatusOr<HashFields> fields = HGetAll(redis, key);
  if (!fields.ok()) return fields.status();
  Hash out;
  for (auto& [name, value] : *fields) out[std::move(name)] = std::move(value);
  return out;
}

std::string Field(const Hash& h, const char* key) {
  auto it = h.find(key);
  return it == h.end() ? std::string() : it->second;
}

uint64_t GetUint(const Hash& h, const char* key) {
  uint64_t n = 0;
  (void)absl::SimpleAtoi(Field(h, key), &n);
  return n;
}

v1::RedriveJob::State StateOf(absl::string_view s) {
  if (s == "PENDING") return v1::RedriveJob::PENDING;
  if (s == "RUNNING") return v1::RedriveJob::RUNNING;
  if (s == "SUCCEEDED") return v1::RedriveJob::SUCCEEDED;
  if (s == "CANCELLED") return v1::RedriveJob::CANCELLED;
  if (s == "FAILED") return v1::RedriveJob::FAILED;
  return v1::RedriveJob::STATE_UNSPECIFIED;
}

v1::RedriveJob JobOf(const std::string& id, const Hash& h) {
  v1::RedriveJob job;
  job.set_job_id(id);
  job.set_state(StateOf(Field(h, "state")));
  job.mutable_handler()->set_channel(Field(h, "channel"));
  job.mutable_handler()->set_handler_id(Field(h, "handler_id"));
  job.mutable_target()->set_kind(static_cast<v1::RedriveTarget::Kind>(GetUint(h, "target_kind")));
  job.mutable_target()->set_channel(Field(h, "target_channel"));
  job.set_total(GetUint(h, "total"));
  job.set_moved(GetUint(h, "moved"));
  job.set_skipped(GetUint(h, "skipped"));
  job.set_failed(GetUint(h, "failed"));
  job.set_created_unix_ms(static_cast<int64_t>(GetUint(h, "created_ms")));
  job.set_updated_unix_ms(static_cast<int64_t>(GetUint(h, "updated_ms")));
  job.set_error(Field(h, "error"));
  job.set_rate_per_second(static_cast<uint32_t>(GetUint(h, "rate")));
  return job;
}

absl::StatusOr<JobTransitionResult> Transition(RedisCommander& redis, const std::string& job_id,
                                               const std::string& op, const std::string& owner,
                                               const std::string& arg, const std::string& error,
                                               absl::Duration expire) {
  absl::StatusOr<RedisReply> r =
      RunScript(redis, JobTransitionScript(), {RedriveJobKey(job_id), RedriveJobIdsKey(job_id)},
                {op, owner, arg, error, absl::StrCat(absl::ToInt64Milliseconds(expire))});
  if (!r.ok()) return r.status();
  return DecodeJobTransition(*r);
}

// job_transition 'advance': hands a step done in the step-record form over
// to the job hash.
absl::StatusOr<JobTransitionResult> Advance(RedisCommander& redis, const std::string& job_id,
                                            const std::string& owner, uint64_t from,
                                            const RedriveStepResult& step, uint64_t to) {
  absl::StatusOr<RedisReply> r =
      RunScript(redis, JobTransitionScript(), {RedriveJobKey(job_id), RedriveJobIdsKey(job_id)},
                {"advance", owner, absl::StrCat(from), "", "0", absl::StrCat(to),
                 absl::StrCat(step.moved), absl::StrCat(step.skipped), absl::StrCat(step.failed)});
  if (!r.ok()) return r.status();
  return DecodeJobTransition(*r);
}

enum class StepOutcome {
  kAdvanced,  // the step ran (here or before) and the job hash moved to *next
  kRetry,     // Redis was unavailable: try the same step again
  kStop,      // cancelled, taken over, or another daemon moved the cursor
  kFailed,    // the job cannot go on: *error says why
};

// One step in the step-record form (Redis Cluster): redrive_step.lua on the
// dead letters' slot with a record beside them, then job_transition
// 'advance' on the {redrive} slot. Idempotent: a step that ran but was not
// handed over (a crash, a lost reply, a daemon that lost the job) is found
// by its record and handed over instead of run again. `args` are
// redrive_step's ARGV in that form.
StepOutcome StepWithRecord(RedisCommander& redis, const std::string& job_id,
                           const std::string& owner, const std::string& dlq,
                           const std::string& target, uint64_t cursor,
                           const std::vector<std::string>& args, uint64_t* next,
                           RedriveStepResult* done, std::string* error) {
  absl::StatusOr<RedisReply> r =
      RunScript(redis, RedriveStepScript(), {RedriveStepRecordKey(dlq, job_id), dlq, target}, args);
  if (!r.ok()) {
    if (absl::IsUnavailable(r.status())) return StepOutcome::kRetry;  // the record tells
    *error = std::string(r.status().message());
    return StepOutcome::kFailed;
  }
  absl::StatusOr<RedriveStepResult> step = DecodeRedriveStep(*r);
  if (!step.ok()) {
    *error = std::string(step.status().message());
    return StepOutcome::kFailed;
  }
  uint64_t to = cursor + std::stoull(args[3]);
  switch (step->kind) {
    case RedriveStepResult::Kind::kStepped:
      break;
    case RedriveStepResult::Kind::kAlreadyDone:
      if (step->from != static_cast<int64_t>(cursor)) {
        LogInfo(LogFields().Job(job_id).Reason("another daemon moved its cursor"),
                "redrive job stopped here");
        return StepOutcome::kStop;
      }
      to = static_cast<uint64_t>(step->to);
      break;
    case RedriveStepResult::Kind::kTargetNotStream:
      *error = absl::StrCat("target key '", target, "' is not a stream");
      return StepOutcome::kFailed;
    default:
      *error = "unexpected redrive_step reply";
      return StepOutcome::kFailed;
  }
  absl::StatusOr<JobTransitionResult> advanced = Advance(redis, job_id, owner, cursor, *step, to);
  if (!advanced.ok()) {
    if (absl::IsUnavailable(advanced.status())) return StepOutcome::kRetry;
    *error = std::string(advanced.status().message());
    return StepOutcome::kFailed;
  }
  if (*advanced == JobTransitionResult::kCursorMoved) {
    // After a lost reply the hand-over may have happened: the job says.
    absl::StatusOr<Hash> now = ReadHash(redis, RedriveJobKey(job_id));
    if (now.ok() && Field(*now, "owner") == owner && GetUint(*now, "cursor") == to) {
      *next = to;
      return StepOutcome::kAdvanced;
    }
  }
  if (*advanced != JobTransitionResult::kDone) {
    LogInfo(LogFields().Job(job_id).Reason(*advanced == JobTransitionResult::kCursorMoved
                                               ? "another daemon moved its cursor"
                                               : "cancelled, or resumed by another daemon"),
            "redrive job stopped here");
    return StepOutcome::kStop;
  }
  *next = to;
  *done = *step;
  return StepOutcome::kAdvanced;
}

}  // namespace

absl::Status RedriveJobs::CheckTarget(const RedriveJobSpec& spec) const {
  if (!options_.step_records || KeySlot(spec.target_stream) == KeySlot(spec.dlq_stream)) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "on a Redis Cluster a redrive moves each dead letter atomically, so its target must be in "
      "the dead letters' slot: the handler's retry stream or its source channel; '",
      spec.target_stream, "' (slot ", KeySlot(spec.target_stream), ") is not in the slot of '",
      spec.dlq_stream, "' (", KeySlot(spec.dlq_stream), ")"));
}

bool RedriveJobs::IsValidJobId(absl::string_view id) {
  return id.size() == 16 && id.find_first_not_of("0123456789abcdef") == absl::string_view::npos;
}

RedriveJobs::RedriveJobs(Options options) : options_(std::move(options)) {
  absl::BitGen gen;
  owner_ = absl::StrCat(options_.instance_id, ":",
                        absl::StrFormat("%08x", absl::Uniform<uint32_t>(gen)));
  scanner_ = std::thread([this] { ScanLoop(); });
}

RedriveJobs::~RedriveJobs() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  scanner_.join();
  absl::flat_hash_map<std::string, std::unique_ptr<Running>> running;
  {
    absl::MutexLock lock(&mu_);
    running.swap(running_);
  }
  for (auto& [id, r] : running) r->thread.join();
}

bool RedriveJobs::SleepUntil(absl::Time until) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithDeadline(absl::Condition(&stopping_), until);
  return !stopping_;
}

void RedriveJobs::ReapLocked() {
  for (auto it = running_.begin(); it != running_.end();) {
    if (it->second->done.load()) {
      it->second->thread.join();
      running_.erase(it++);
    } else {
      ++it;
    }
  }
}

bool RedriveJobs::Launch(const std::string& job_id, const std::string& owner) {
  ReapLocked();
  if (stopping_ || running_.contains(job_id)) return false;
  auto r = std::make_unique<Running>();
  Running* raw = r.get();
  r->thread = std::thread([this, job_id, owner, raw] {
    Run(job_id, owner);
    raw->done.store(true);
  });
  running_[job_id] = std::move(r);
  return true;
}

absl::StatusOr<v1::RedriveJob> RedriveJobs::Start(RedisCommander& redis, const RedriveJobSpec& spec,
                                                  const std::vector<std::string>& ids) {
  {
    absl::MutexLock lock(&mu_);
    ReapLocked();
    if (stopping_) return absl::UnavailableError("redrived is shutting down");
    if (running_.size() + starting_ >= options_.max_running) {
      return absl::ResourceExhaustedError(absl::StrCat(
          running_.size() + starting_, " redrive jobs run on this daemon already (at most ",
          options_.max_running, "); wait for one to end or cancel one"));
    }
    ++starting_;  // the slot is ours until the job runs or creating it failed
  }
  struct Release {
    RedriveJobs* jobs;
    ~Release() {
      absl::MutexLock lock(&jobs->mu_);
      --jobs->starting_;
    }
  } release{this};
  absl::BitGen gen;
  const std::string job_id = absl::StrFormat("%016x", absl::Uniform<uint64_t>(gen));
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  const std::string now = absl::StrCat(now_ms);
  NewJobRecord record;
  record.job_id = job_id;
  record.hash_key = RedriveJobKey(job_id);
  record.ids_key = RedriveJobIdsKey(job_id);
  record.index_key = std::string(kRedriveJobsKey);
  record.created_ms = now_ms;
  record.ids = ids;
  record.fields = {{"channel", spec.handler.channel()},
                   {"handler_id", spec.handler.handler_id()},
                   {"target_kind", absl::StrCat(static_cast<int>(spec.target.kind()))},
                   {"target_channel", spec.target.channel()},
                   {"dlq", spec.dlq_stream},
                   {"target_stream", spec.target_stream},
                   {"target_group", spec.target_group},
                   {"reset", spec.reset_attempts ? "1" : "0"},
                   {"include_quarantined", spec.include_quarantined ? "1" : "0"},
                   {"rate", absl::StrCat(spec.rate_per_second)},
                   {"state", "RUNNING"},
                   {"owner", owner_},
                   {"heartbeat_ms", now},
                   {"cursor", "0"},
                   {"total", absl::StrCat(ids.size())},
                   {"moved", "0"},
                   {"skipped", "0"},
                   {"failed", "0"},
                   {"created_ms", now},
                   {"updated_ms", now},
                   {"error", ""}};
  // Everything in one transaction: a job exists whole or not at all.
  if (absl::Status s = CreateJobRecord(redis, record); !s.ok()) return s;
  // The heartbeat on Redis's clock, which takeovers compare with.
  (void)Transition(redis, job_id, "heartbeat", owner_, "", "", options_.retention);
  {
    absl::MutexLock lock(&mu_);
    Launch(job_id, owner_);
  }
  LogInfo(LogFields()
              .Channel(spec.handler.channel())
              .Handler(spec.handler.handler_id())
              .Job(job_id)
              .Stream(spec.target_stream),
          "redrive job started: {} dead letters (rate {}/s)", ids.size(), spec.rate_per_second);
  return Get(redis, job_id);
}

absl::StatusOr<v1::RedriveJob> RedriveJobs::Get(RedisCommander& redis, const std::string& job_id) {
  absl::StatusOr<Hash> h = ReadHash(redis, RedriveJobKey(job_id));
  if (!h.ok()) return h.status();
  if (h->empty()) return absl::NotFoundError(absl::StrCat("no redrive job ", job_id));
  return JobOf(job_id, *h);
}

absl::StatusOr<v1::RedriveJob> RedriveJobs::Cancel(RedisCommander& redis,
                                                   const std::string& job_id) {
  absl::StatusOr<JobTransitionResult> r =
      Transition(redis, job_id, "cancel", owner_, "", "", options_.retention);
  if (!r.ok()) return r.status();
  if (*r == JobTransitionResult::kNoSuchJob) {
    return absl::NotFoundError(absl::StrCat("no redrive job ", job_id));
  }
  absl::StatusOr<v1::RedriveJob> job = Get(redis, job_id);
  if (!job.ok()) return job.status();
  if (*r == JobTransitionResult::kNotApplicable) {
    return absl::FailedPreconditionError(absl::StrCat(
        "redrive job ", job_id, " already ended (", v1::RedriveJob::State_Name(job->state()), ")"));
  }
  LogInfo(LogFields().Job(job_id), "redrive job cancelled after {} moved", job->moved());
  return job;
}

void RedriveJobs::Run(std::string job_id, std::string owner) {
  std::unique_ptr<RedisCommander> connection = OpenRedis(options_.redis);
  RedisCommander& redis = *connection;
  const std::string key = RedriveJobKey(job_id);
  const std::string ids_key = RedriveJobIdsKey(job_id);
  Hash h;
  while (true) {
    absl::StatusOr<Hash> read = ReadHash(redis, key);
    if (read.ok()) {
      h = *std::move(read);
      break;
    }
    if (!SleepUntil(absl::Now() + kErrorPause)) return;
  }
  if (Field(h, "state") != "RUNNING") return;
  const std::string dlq = Field(h, "dlq");
  const std::string target = Field(h, "target_stream");
  const std::string target_group = Field(h, "target_group");
  const bool to_handler = !target_group.empty();
  const bool reset = Field(h, "reset") == "1";
  const bool include_quarantined = Field(h, "include_quarantined") == "1";
  const uint64_t rate = GetUint(h, "rate");
  uint64_t cursor = GetUint(h, "cursor");
  absl::Time start = absl::Now();
  uint64_t paced = 0;
  absl::Time last_beat = absl::Now();
  auto finish = [&](const std::string& state, const std::string& error) {
    absl::StatusOr<JobTransitionResult> r =
        Transition(redis, job_id, "finish", owner, state, error, options_.retention);
    if (r.ok() && *r == JobTransitionResult::kDone) {
      absl::StatusOr<Hash> end = ReadHash(redis, key);
      if (end.ok()) {
        LogInfo(LogFields().Job(job_id).Error(error),
                "redrive job {}: moved {}, skipped {}, failed {}", state, Field(*end, "moved"),
                Field(*end, "skipped"), Field(*end, "failed"));
      }
    }
  };
  // Batches: at most kIdsPerRead ids per step, about a tenth of a second's
  // worth when paced, so a cancel or a takeover stops the job within one.
  const uint64_t batch = rate > 0 ? std::clamp<uint64_t>(rate / 10, 1, kIdsPerRead) : kIdsPerRead;
  while (true) {
    absl::StatusOr<std::vector<std::string>> list = LRange(
        redis, ids_key, static_cast<int64_t>(cursor), static_cast<int64_t>(cursor + batch - 1));
    if (!list.ok()) {
      if (!SleepUntil(absl::Now() + kErrorPause)) return;
      continue;
    }
    if (list->empty()) {
      finish("SUCCEEDED", "");
      return;
    }
    std::vector<std::string> ids = *std::move(list);
    if (rate > 0) {
      // The batch's last entry keeps the rate: due at start + (n - 1) / rate.
      absl::Time due = start + absl::Seconds(1) * static_cast<double>(paced + ids.size() - 1) /
                                   static_cast<double>(rate);
      if (due < absl::Now() - absl::Seconds(1)) {  // after a stall: no burst
        start = absl::Now();
        paced = 0;
        due = start +
              absl::Seconds(1) * static_cast<double>(ids.size() - 1) / static_cast<double>(rate);
      }
      while (absl::Now() < due) {
        // Long waits (slow rates) keep the job's heartbeat fresh.
        if (!SleepUntil(std::min(due, last_beat + options_.heartbeat))) return;
        if (absl::Now() - last_beat >= options_.heartbeat) {
          absl::StatusOr<JobTransitionResult> beat =
              Transition(redis, job_id, "heartbeat", owner, "", "", options_.retention);
          if (beat.ok() && *beat != JobTransitionResult::kDone) return;  // cancelled or taken over
          last_beat = absl::Now();
        }
      }
    } else if (!SleepUntil(absl::InfinitePast())) {
      return;
    }
    // One step for the whole batch: ARGV = owner, cursor, target group,
    // count, then per id: id, action, field count, fields.
    bool stepped = false;
    uint64_t next = cursor + ids.size();
    while (!stepped) {
      std::vector<std::string> missing;
      absl::StatusOr<std::vector<StreamEntry>> found = FetchDeadLetters(redis, dlq, ids, &missing);
      if (!found.ok()) {
        if (absl::IsUnavailable(found.status())) {
          if (!SleepUntil(absl::Now() + kErrorPause)) return;
          continue;
        }
        finish("FAILED", std::string(found.status().message()));
        return;
      }
      absl::flat_hash_map<std::string, const StreamEntry*> by_id;
      for (const StreamEntry& e : *found) by_id[e.id] = &e;
      std::vector<std::string> args = {owner, absl::StrCat(cursor), target_group, ""};
      size_t bytes = 0;
      size_t taken = 0;
      for (const std::string& id : ids) {
        // One step carries at most kMaxStepBytes of fields (at least one id).
        if (taken > 0 && bytes > kMaxStepBytes) break;
        ++taken;
        auto it = by_id.find(id);
        std::string action = "move";  // a missing id is counted skipped by the step
        FieldList fields;
        if (it != by_id.end()) {
          const StreamEntry& e = *it->second;
          const v1::DeadLetter info = DecodeDeadLetter(e, 0, options_.max_redrives);
          if (info.quarantined() && !include_quarantined) {
            action = "skipped";
          } else if (absl::StatusOr<FieldList> f = RedriveFields(e, info, to_handler, reset);
                     f.ok()) {
            fields = *std::move(f);
          } else {
            LogWarn(LogFields()
                        .Channel(info.source_channel())
                        .Handler(info.handler_id())
                        .Job(job_id)
                        .DlqEntryId(id)
                        .Reason(f.status().message()),
                    "redrive job: dead letter left in place");
            action = "failed";
          }
        }
        args.push_back(id);
        args.push_back(action);
        args.push_back(absl::StrCat(fields.size() * 2));
        for (auto& [n, v] : fields) {
          bytes += n.size() + v.size();
          args.push_back(std::move(n));
          args.push_back(std::move(v));
        }
      }
      if (taken < ids.size()) ids.resize(taken);
      args[3] = absl::StrCat(ids.size());
      next = cursor + ids.size();
      if (options_.step_records) {
        // Step-record form (Redis Cluster): the step is recorded beside the
        // dead letters and handed over to the job hash afterwards.
        args[0].clear();
        args.push_back(absl::StrCat(absl::ToInt64Milliseconds(options_.retention)));
        std::string error;
        RedriveStepResult done;
        switch (
            StepWithRecord(redis, job_id, owner, dlq, target, cursor, args, &next, &done, &error)) {
          case StepOutcome::kAdvanced:
            stepped = true;
            if (options_.metrics != nullptr && done.moved > 0) {
              options_.metrics->ForHandler(Field(h, "channel"), Field(h, "handler_id"))
                  ->redriven.Add(static_cast<uint64_t>(done.moved));
            }
            continue;
          case StepOutcome::kRetry:
            if (!SleepUntil(absl::Now() + kErrorPause)) return;
            continue;
          case StepOutcome::kStop:
            return;
          case StepOutcome::kFailed:
            finish("FAILED", error);
            return;
        }
      }
      absl::StatusOr<RedisReply> r =
          RunScript(redis, RedriveStepScript(), {key, dlq, target}, args);
      if (!r.ok()) {
        if (absl::IsUnavailable(r.status())) {
          // The step may or may not have run: the cursor tells.
          if (!SleepUntil(absl::Now() + kErrorPause)) return;
          absl::StatusOr<Hash> now = ReadHash(redis, key);
          if (now.ok() && GetUint(*now, "cursor") == cursor + ids.size()) stepped = true;
          continue;
        }
        finish("FAILED", std::string(r.status().message()));
        return;
      }
      absl::StatusOr<RedriveStepResult> step = DecodeRedriveStep(*r);
      if (!step.ok()) {
        finish("FAILED", std::string(step.status().message()));
        return;
      }
      if (step->kind == RedriveStepResult::Kind::kTargetNotStream) {
        finish("FAILED", absl::StrCat("target key '", target, "' is not a stream"));
        return;
      }
      if (step->kind != RedriveStepResult::Kind::kStepped) {
        LogInfo(LogFields().Job(job_id).Reason(step->kind == RedriveStepResult::Kind::kNotOwner
                                                   ? "cancelled, or resumed by another daemon"
                                                   : "another daemon moved its cursor"),
                "redrive job stopped here");
        return;
      }
      stepped = true;
      if (options_.metrics != nullptr && step->moved > 0) {
        options_.metrics->ForHandler(Field(h, "channel"), Field(h, "handler_id"))
            ->redriven.Add(static_cast<uint64_t>(step->moved));
      }
    }
    paced += next - cursor;
    cursor = next;
    last_beat = absl::Now();
  }
}

void RedriveJobs::ScanLoop() {
  std::unique_ptr<RedisCommander> redis = OpenRedis(options_.redis);
  while (SleepUntil(absl::Now() + options_.scan_interval)) ResumeStale(*redis);
}

void RedriveJobs::ResumeStale(RedisCommander& redis) {
  absl::StatusOr<std::vector<std::string>> ids = ZMembers(redis, kRedriveJobsKey);
  if (!ids.ok() || ids->empty()) {
    LogDebug(LogFields().Error(ids.status().message()), "redrive jobs scan: {}",
             ids.ok() ? "no jobs" : "failed");
    return;
  }
  std::vector<std::string> keys;
  keys.reserve(ids->size());
  for (const std::string& id : *ids) keys.push_back(RedriveJobKey(id));
  absl::StatusOr<std::vector<std::optional<std::string>>> states =
      ReadJobField(redis, keys, "state");
  if (!states.ok()) return;
  for (size_t i = 0; i < states->size(); ++i) {
    const std::string& job_id = (*ids)[i];
    const std::optional<std::string>& state = (*states)[i];
    if (!state.has_value()) {
      (void)ZRem(redis, kRedriveJobsKey, job_id);  // expired
      continue;
    }
    if (*state != "RUNNING") continue;
    {
      absl::MutexLock lock(&mu_);
      ReapLocked();
      if (stopping_ || running_.contains(job_id) ||
          running_.size() + starting_ >= options_.max_running) {
        continue;
      }
    }
    absl::StatusOr<JobTransitionResult> claimed = Transition(
        redis, job_id, "claim", owner_,
        absl::StrCat(absl::ToInt64Milliseconds(options_.takeover_after)), "", options_.retention);
    if (!claimed.ok() || *claimed != JobTransitionResult::kDone) {
      LogDebug(LogFields().Job(job_id).Reason(claimed.ok() ? "its owner is alive or it ended"
                                                           : claimed.status().message()),
               "redrive job not claimed");
      continue;
    }
    LogInfo(LogFields().Job(job_id), "redrive job resumed here (its daemon stopped)");
    absl::MutexLock lock(&mu_);
    Launch(job_id, owner_);
  }
}

}  // namespace redrive
