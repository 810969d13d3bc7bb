// Sweeper: finds what no live consumer will settle (R-D3, R-D9). Once per
// sweep period (max(lease, min_sweep)) per handler and source, sooner after
// a failed read or schedule, it lists the consumers with pending entries
// (but `{handler}:scheduled`), claims their entries idle past the lease —
// XCLAIM with the same min-idle, so of two racing daemons one wins — and
// hands them to the dispatcher (`claimed`), which fails them as expired
// leases. Every sixth sweep it removes consumers with nothing pending idle
// past max(consumer_expiry, 10 leases); sweeps of the retry stream trim it
// (trim_retry.lua) when entries were settled there since the last trim.
//
// Loop thread only.
#ifndef REDRIVE_DAEMON_ENGINE_SWEEPER_H_
#define REDRIVE_DAEMON_ENGINE_SWEEPER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "daemon/engine/context.h"

namespace redrive {

class Sweeper {
 public:
  struct Hooks {
    // Ids of `source` this daemon holds for the handler (a sweep skips them).
    std::function<absl::flat_hash_set<std::string>(const HandlerRef&, uint8_t source)> held;
    // Entries claimed from `consumer` for the handler.
    std::function<void(const HandlerRef&, uint8_t source, const std::string& consumer,
                       std::vector<StreamEntry> entries)>
        claimed;
  };

  Sweeper(EngineContext& ctx, Hooks hooks);

  void Add(const HandlerRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void Forget(const HandlerRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread) {
    handlers_.erase(ref.generation);
  }
  // Sweeps each source of `ref` whose time has come.
  void MaybeSweep(const HandlerRef& ref, const SpecPtr& spec, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Sweeps `source` of `ref` by `at` at the latest.
  void SweepBy(const HandlerRef& ref, uint8_t source, absl::Time at)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // Entries of the retry stream were settled: its next sweep trims it.
  void WantTrim(const HandlerRef& ref) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  // The sweep period of a handler.
  absl::Duration Period(const SubscriptionSpec& spec) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

 private:
  struct SourceState {
    bool sweeping = false;
    absl::Time next_sweep = absl::InfinitePast();
    uint32_t count = 0;
    bool trim_wanted = true;  // retry source only
    bool trimming = false;
  };
  struct PerHandler {
    SourceState sources[2];
  };

  SourceState* Find(const HandlerRef& ref, uint8_t source)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void Sweep(const HandlerRef& ref, const SpecPtr& spec, uint8_t source)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void OnPendingConsumers(const HandlerRef& ref, const SpecPtr& spec, uint8_t source,
                          std::vector<std::string> consumers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void SweepConsumer(const HandlerRef& ref, const SpecPtr& spec, uint8_t source,
                     const std::string& consumer, std::function<void()> done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void Trim(const HandlerRef& ref, const SpecPtr& spec) ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);
  void RemoveIdleConsumers(const HandlerRef& ref, const SpecPtr& spec, uint8_t source)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(kLoopThread);

  EngineContext& ctx_;
  const Hooks hooks_;
  // By HandlerRef::generation (see Reader::handlers_).
  absl::flat_hash_map<uint64_t, PerHandler> handlers_ ABSL_GUARDED_BY(kLoopThread);
  LifeGuard guard_;
};

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENGINE_SWEEPER_H_
