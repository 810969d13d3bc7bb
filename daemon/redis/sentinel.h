// SentinelWatcher: which node is the primary of a Sentinel-managed Redis
// (redis-sentinel:// URLs), and a signal for connections when it changes.
//
// Its own thread asks the sentinels in turn (`SENTINEL
// GET-MASTER-ADDR-BY-NAME`, short timeouts), then stays SUBSCRIBEd to
// `+switch-master` on the sentinel that answered, moving on to the next one
// when that connection drops. Connections (RedisConnection, HiredisAsync)
// read primary() on every connect, so nothing blocks on a sentinel on their
// threads (the event loop's included); they drop their connection when
// generation() moves on, and call Refresh() when the node they reached is not
// the primary (ROLE, a READONLY error) or stopped answering, which makes the
// thread ask the sentinels again at once instead of waiting for an event.
//
// Thread-safe.
#ifndef REDRIVE_DAEMON_REDIS_SENTINEL_H_
#define REDRIVE_DAEMON_REDIS_SENTINEL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/redis/reply.h"
#include "daemon/redis/url.h"

struct redisContext;

namespace redrive {

// Asks each sentinel in turn for the primary of `sentinel.master_name`; the
// first answer wins. UNAVAILABLE, naming every sentinel's failure, when none
// answers (or none knows the name). Blocks up to about 2 × `timeout` per
// sentinel.
absl::StatusOr<HostPort> AskSentinels(const SentinelAddress& sentinel, absl::Duration timeout);

// ROLE's reply says "master".
bool IsMasterRole(const RedisReply& role);
// A write reached a replica: "READONLY You can't write against a read only
// replica."
bool IsReadOnlyError(absl::string_view error);

class SentinelWatcher {
 public:
  struct Options {
    SentinelAddress sentinel;
    // Connect and command timeout towards one sentinel.
    absl::Duration timeout = absl::Milliseconds(500);
    // Pause before asking every sentinel again after none answered, and the
    // least time between two asks that Refresh() triggers.
    absl::Duration retry = absl::Milliseconds(200);
  };
  struct Primary {
    HostPort address;
    uint64_t generation = 0;  // generation() when this address was learned
  };

  // Asks the sentinels once before returning (if none answers, no primary
  // is known and connections fail with UNAVAILABLE until the thread learns
  // one), then starts the thread.
  static std::shared_ptr<SentinelWatcher> Start(Options options);
  // Stops and joins: within ~100 ms, or when a query to the sentinels under
  // way ends (bounded by the timeouts).
  ~SentinelWatcher();
  SentinelWatcher(const SentinelWatcher&) = delete;
  SentinelWatcher& operator=(const SentinelWatcher&) = delete;

  // The primary as last learned; UNAVAILABLE while none is known.
  absl::StatusOr<Primary> primary() const ABSL_LOCKS_EXCLUDED(mu_);
  // `address` (the redis-sentinel:// one) made a plain address of the
  // primary: host and port set, sentinel cleared (so Redacted() names the
  // node); credentials and db kept. Stores the generation in `generation`.
  absl::StatusOr<RedisAddress> PrimaryAddress(const RedisAddress& address,
                                              uint64_t& generation) const ABSL_LOCKS_EXCLUDED(mu_);
  // Moves on every time the primary changes. Cheap (one atomic load).
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // The node a connection reached is not (or no longer) the primary: ask the
  // sentinels again soon.
  void Refresh() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit SentinelWatcher(Options options);
  void Run();
  // Subscribes on one sentinel and follows it until that connection fails
  // or Stop. False when it could not subscribe at all.
  bool Follow(const HostPort& at);
  void OnSwitchMaster(absl::string_view payload);
  void SetPrimary(const HostPort& address, absl::string_view why) ABSL_LOCKS_EXCLUDED(mu_);
  // Asks the sentinels if a Refresh() is due.
  void AskIfRequested() ABSL_LOCKS_EXCLUDED(mu_);
  bool stopping() const ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  std::atomic<uint64_t> generation_{0};
  mutable absl::Mutex mu_;
  std::optional<HostPort> primary_ ABSL_GUARDED_BY(mu_);
  bool refresh_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_ask_ = absl::InfinitePast();  // watcher thread only
  std::thread thread_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_SENTINEL_H_
