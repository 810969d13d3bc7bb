#include "daemon/cluster_stream_notifier.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "daemon/redis/cluster_slots.h"
#include "daemon/redis/hiredis_async.h"
#include "daemon/redis/stream_watch.h"

namespace redrive {

namespace {

constexpr absl::Duration kMinRepairDelay = absl::Milliseconds(200);
constexpr absl::Duration kMaxRepairDelay = absl::Seconds(2);

// The StreamWatchOps of one slot group (see the header): LastId and the
// blocking read as RedisStreamWatchOps does them, CLIENT UNBLOCK on the
// master's node connection, and a hook on failed reads.
class SlotWatchOps final : public StreamWatchOps {
 public:
  SlotWatchOps(ClusterAsync& commands, HiredisAsync& blocking, RedisAddress master,
               std::function<void()> on_read_error)
      : commands_(commands),
        blocking_(blocking),
        master_(std::move(master)),
        routed_(blocking, commands),
        on_read_error_(std::move(on_read_error)) {}

  void LastId(const std::string& stream, OpCallback<std::string> done) override {
    routed_.LastId(stream, std::move(done));
  }
  void WaitForEntries(const std::vector<StreamCursor>& after, absl::Duration block,
                      OpCallback<std::vector<StreamCursor>> done) override {
    routed_.WaitForEntries(after, block,
                           [done = std::move(done), on_error = on_read_error_](
                               absl::StatusOr<std::vector<StreamCursor>> active) {
                             if (!active.ok()) on_error();
                             done(std::move(active));
                           });
  }
  void Unblock(int64_t client_id, OpCallback<bool> done) override {
    // The node connection of the master, as the topology has it now.
    RedisStreamWatchOps(blocking_, *commands_.ForNode(master_)).Unblock(client_id, std::move(done));
  }
  bool blocking_connected() const override { return !closed_ && blocking_.connected(); }

  // No more reads: the group moved or closed.
  void Close() { closed_ = true; }

 private:
  ClusterAsync& commands_;
  HiredisAsync& blocking_;
  const RedisAddress master_;
  RedisStreamWatchOps routed_;
  const std::function<void()> on_read_error_;
  bool closed_ = false;
};

}  // namespace

struct ClusterStreamNotifier::Placement {
  ~Placement() { *current = false; }  // then notifier, ops, blocking go

  int slot = 0;
  bool report = false;   // report the group's streams once covered
  bool started = false;  // connected once: the group's streams are watched
  // False once retired: the callbacks of its parts are ignored.
  std::shared_ptr<bool> current = std::make_shared<bool>(true);
  std::unique_ptr<HiredisAsync> blocking;
  std::unique_ptr<SlotWatchOps> ops;
  std::unique_ptr<StreamNotifier> notifier;
};

ClusterStreamNotifier::ClusterStreamNotifier(EventLoop& loop, ClusterAsync& commands,
                                             RedisConnectionOptions blocking, Callback on_activity,
                                             absl::Duration block)
    : loop_(loop),
      commands_(commands),
      blocking_options_(std::move(blocking)),
      on_activity_(std::move(on_activity)),
      block_(block),
      repair_delay_(kMinRepairDelay) {
  repair_timer_ = loop_.NewTimer([this] {
    repair_armed_ = false;
    Repair();
  });
  listener_id_ = commands_.AddTopologyListener([this] { Regroup(); });
}

ClusterStreamNotifier::~ClusterStreamNotifier() {
  *alive_ = false;
  commands_.RemoveTopologyListener(listener_id_);
  groups_.clear();
  retired_.clear();
}

void ClusterStreamNotifier::Watch(const std::string& stream, std::function<void()> ready) {
  Watched& w = streams_[stream];
  if (++w.refs > 1) {
    // Like StreamNotifier: at once when the stream is covered.
    const Group& g = groups_[w.slot];
    if (g.placement != nullptr && g.placement->started && w.waiting.empty()) {
      ready();
    } else {
      w.waiting.push_back(std::move(ready));
    }
    return;
  }
  w.slot = KeySlot(stream);
  w.waiting.push_back(std::move(ready));
  Group& g = groups_[w.slot];
  g.streams.insert(stream);
  if (g.placement == nullptr) {
    Place(w.slot, g);
  } else if (g.placement->started) {
    WatchIn(*g.placement, stream, /*report=*/false);
  }  // else watched when the placement connects
}

void ClusterStreamNotifier::Unwatch(const std::string& stream) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  if (--it->second.refs > 0) return;
  const int slot = it->second.slot;
  std::vector<std::function<void()>> waiting = std::move(it->second.waiting);
  streams_.erase(it);
  if (!waiting.empty()) {
    // StreamNotifier runs `ready` even for a stream unwatched meanwhile.
    loop_.Post([alive = alive_, waiting = std::move(waiting)] {
      if (!*alive) return;
      for (const std::function<void()>& ready : waiting) ready();
    });
  }
  auto g = groups_.find(slot);
  if (g == groups_.end()) return;
  g->second.streams.erase(stream);
  if (g->second.placement != nullptr) g->second.placement->notifier->Unwatch(stream);
  if (g->second.streams.empty()) {
    Retire(g->second);
    groups_.erase(g);
  }
}

void ClusterStreamNotifier::Kick() {
  for (auto& [slot, g] : groups_) {
    if (g.placement != nullptr) g.placement->notifier->Kick();
  }
}

bool ClusterStreamNotifier::healthy() const {
  return std::all_of(groups_.begin(), groups_.end(), [](const auto& entry) {
    const Group& g = entry.second;
    return g.placement != nullptr && g.placement->started && g.placement->notifier->healthy();
  });
}

size_t ClusterStreamNotifier::reading_groups() const {
  return std::count_if(groups_.begin(), groups_.end(),
                       [](const auto& entry) { return entry.second.placement != nullptr; });
}

void ClusterStreamNotifier::Regroup() {
  for (auto& [slot, g] : groups_) {
    const ClusterNode* master = commands_.slot_map().MasterOf(slot);
    const std::string want = master == nullptr ? std::string() : master->HostPort();
    if (g.placement != nullptr && want == g.master) continue;
    if (g.placement != nullptr) {
      spdlog::info("stream notifier: slot {} moved from {} to {}", slot, g.master,
                   want.empty() ? "no master" : want);
      g.report_on_place = true;
      Retire(g);
    }
    Place(slot, g);
  }
  Kick();  // groups whose read failed on a stale map read again
}

void ClusterStreamNotifier::Place(int slot, Group& group) {
  const ClusterNode* master = commands_.slot_map().MasterOf(slot);
  if (master == nullptr) {
    Repair();  // parked: ask for the topology until the slot has a master
    return;
  }
  RedisConnectionOptions options = blocking_options_;
  options.address = RedisAddress{};
  options.address.host = master->host;
  options.address.port = master->port;
  for (const RedisAddress& a : commands_.Masters()) {  // with the credentials
    if (a.host == master->host && a.port == master->port) options.address = a;
  }
  options.sentinel = nullptr;
  auto placement = std::make_unique<Placement>();
  Placement* p = placement.get();
  p->slot = slot;
  p->report = group.report_on_place;
  group.report_on_place = false;
  const std::shared_ptr<bool> current = p->current;
  p->blocking = std::make_unique<HiredisAsync>(loop_, options, [this, alive = alive_, p, current] {
    if (*alive && *current && p->notifier != nullptr) OnConnected(*p);
  });
  p->ops = std::make_unique<SlotWatchOps>(commands_, *p->blocking, options.address,
                                          [this, alive = alive_, current] {
                                            if (*alive && *current) OnReadError();
                                          });
  p->notifier = std::make_unique<StreamNotifier>(
      *p->ops,
      [this, alive = alive_, current](const std::string& stream) {
        if (*alive && *current && streams_.contains(stream)) on_activity_(stream);
      },
      block_);
  group.master = master->HostPort();
  group.placement = std::move(placement);
  if (p->blocking->connected()) OnConnected(*p);
}

// The first connect watches the group's streams (after the notifier knows
// its connection: their XREAD follows their LastId, and the only report is
// the one `report` asks for); later ones report every stream, as
// StreamNotifier does after a reconnect.
void ClusterStreamNotifier::OnConnected(Placement& placement) {
  placement.notifier->OnBlockingConnected(placement.blocking->client_id());
  if (placement.started) return;
  placement.started = true;
  auto g = groups_.find(placement.slot);
  if (g == groups_.end()) return;
  for (const std::string& stream : g->second.streams) WatchIn(placement, stream, placement.report);
}

void ClusterStreamNotifier::WatchIn(Placement& placement, const std::string& stream, bool report) {
  placement.notifier->Watch(
      stream, [this, alive = alive_, current = placement.current, stream, report] {
        // A retired placement's watch: the next placement runs the readies.
        if (!*alive || !*current) return;
        auto it = streams_.find(stream);
        if (it == streams_.end()) return;
        std::vector<std::function<void()>> waiting = std::move(it->second.waiting);
        it->second.waiting.clear();
        for (const std::function<void()>& ready : waiting) ready();
        // Entries may have arrived while no XREAD covered the stream.
        if (report && *alive && streams_.contains(stream)) on_activity_(stream);
      });
}

void ClusterStreamNotifier::Retire(Group& group) {
  group.master.clear();
  if (group.placement == nullptr) return;
  *group.placement->current = false;
  group.placement->ops->Close();
  retired_.push_back(std::move(group.placement));
  if (retired_.size() > 1) return;  // a cleanup is posted already
  loop_.Post([this, alive = alive_] {
    if (!*alive) return;
    std::vector<std::unique_ptr<Placement>> doomed = std::move(retired_);
    retired_.clear();
  });
}

void ClusterStreamNotifier::OnReadError() {
  commands_.Refresh();
  if (!repair_armed_) {
    repair_armed_ = true;
    repair_timer_->Arm(repair_delay_);
  }
}

// While a group is parked or its read fails: ask for the topology again
// and retry the reads, backing off.
void ClusterStreamNotifier::Repair() {
  if (healthy()) {
    repair_delay_ = kMinRepairDelay;
    return;
  }
  if (repair_armed_) return;
  commands_.Refresh();
  Kick();
  repair_armed_ = true;
  repair_timer_->Arm(repair_delay_);
  repair_delay_ = std::min(repair_delay_ * 2, kMaxRepairDelay);
}

}  // namespace redrive
