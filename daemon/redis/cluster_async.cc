#include "daemon/redis/cluster_async.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/redis/cluster_route.h"
#include "daemon/redis/hiredis_async.h"

namespace redrive {

struct ClusterAsync::Request {
  std::vector<std::string> storage;  // owns the arguments
  RedisArgv argv;                    // views into storage
  AsyncCallback done;
  absl::Duration extra_timeout;
  ClusterRoute route;
  int redirects = 0;
  int retries = 0;
};

namespace {

// Runs the request's callback (exactly once: it is moved out).
template <typename RequestT>
void Finish(RequestT& request, absl::StatusOr<RedisReply> result) {
  AsyncCallback done = std::move(request.done);
  if (done) done(std::move(result));
}

}  // namespace

ClusterAsync::ClusterAsync(EventLoop& loop, ClusterOptions options)
    : loop_(loop), options_(std::move(options)), alive_(std::make_shared<bool>(true)) {
  if (absl::Status s = Validate(options_); !s.ok()) {
    spdlog::critical("ClusterAsync: {}", std::string(s.message()));
    std::abort();
  }
  retry_timer_ = loop_.NewTimer([this] { RunDueRetries(); });
  refresh_timer_ = loop_.NewTimer([this] {
    refresh_scheduled_ = false;
    Refresh();
  });
  StartRefresh();
}

ClusterAsync::~ClusterAsync() {
  *alive_ = false;
  const absl::Status gone = absl::UnavailableError("redis cluster: client destroyed");
  for (const std::shared_ptr<Request>& r : waiting_) Finish(*r, gone);
  for (auto& [due, r] : retries_) Finish(*r, gone);
  waiting_.clear();
  retries_.clear();
  // Outstanding commands fail inside these destructors (UNAVAILABLE); their
  // callbacks see alive_ false and only run the caller's callback.
  nodes_.clear();
  retired_.clear();
}

bool ClusterAsync::connected() const { return have_topology_ && map_.UnassignedSlots() == 0; }

void ClusterAsync::Send(const RedisArgv& argv, AsyncCallback done, absl::Duration extra_timeout) {
  absl::StatusOr<ClusterRoute> route = RouteCommand(argv);
  if (!route.ok()) {
    loop_.Post([done = std::move(done), status = route.status()] { done(status); });
    return;
  }
  auto request = std::make_shared<Request>();
  request->storage.reserve(argv.size());
  for (absl::string_view arg : argv) request->storage.emplace_back(arg);
  request->argv.assign(request->storage.begin(), request->storage.end());
  request->done = std::move(done);
  request->extra_timeout = extra_timeout;
  request->route = *route;
  if (!have_topology_) {
    waiting_.push_back(std::move(request));
    if (!refreshing_) Refresh();  // else the running discovery serves it
    return;
  }
  Dispatch(request);
}

void ClusterAsync::Dispatch(const std::shared_ptr<Request>& request) {
  if (request->route.kind == ClusterRoute::Kind::kAllMasters) {
    SendToAllMasters(request);
    return;
  }
  const ClusterNode* master = nullptr;
  std::vector<ClusterNode> masters;
  if (request->route.kind == ClusterRoute::Kind::kAnyMaster) {
    masters = map_.Masters();
    if (!masters.empty()) master = &masters.front();
  } else {
    master = map_.MasterOf(request->route.slot);
  }
  if (master != nullptr) {
    SendToNode(request, *master, /*asking=*/false);
    return;
  }
  // No master known for the slot (a failover in progress): ask again and
  // retry, like CLUSTERDOWN.
  Refresh();
  if (request->retries < options_.max_retries) {
    RetryLater(request);
    return;
  }
  loop_.Post([request, slot = request->route.slot] {
    Finish(*request,
           absl::UnavailableError(absl::StrCat("redis cluster: no master serves slot ", slot)));
  });
}

void ClusterAsync::SendToNode(const std::shared_ptr<Request>& request, const ClusterNode& node,
                              bool asking) {
  HiredisAsync& connection = Connection(node);
  if (asking) {
    // The command right behind it on this connection is what it applies to;
    // if ASKING failed, the command gets MOVED or an error of its own.
    connection.Send({"ASKING"}, [](const absl::StatusOr<RedisReply>&) {});
  }
  connection.Send(
      request->argv,
      [this, alive = alive_, request](absl::StatusOr<RedisReply> reply) {
        if (!*alive) {
          Finish(*request, std::move(reply));
          return;
        }
        OnReply(request, std::move(reply));
      },
      request->extra_timeout);
}

void ClusterAsync::OnReply(const std::shared_ptr<Request>& request,
                           absl::StatusOr<RedisReply> reply) {
  if (!reply.ok()) {
    // The node is down or the connection broke: the command may have run,
    // so it is not re-sent; the topology may have changed.
    Refresh();
    Finish(*request, std::move(reply));
    return;
  }
  if (!reply->is_error()) {
    Finish(*request, std::move(reply));
    return;
  }
  absl::StatusOr<ClusterReplyAction> action = ClassifyClusterReply(*reply);
  if (!action.ok()) {
    Finish(*request, action.status());
    return;
  }
  switch (action->kind) {
    case ClusterReplyAction::Kind::kFinal:
      break;
    case ClusterReplyAction::Kind::kMoved:
    case ClusterReplyAction::Kind::kAsk: {
      if (request->redirects >= options_.max_redirects) break;
      ++request->redirects;
      const ClusterRedirect& r = action->redirect;
      if (action->kind == ClusterReplyAction::Kind::kMoved) {
        ++stats_.moved;
        map_.SetMaster(r.slot, r.target);
        Refresh();
        SendToNode(request, r.target, /*asking=*/false);
      } else {
        ++stats_.ask;
        SendToNode(request, r.target, /*asking=*/true);
      }
      return;
    }
    case ClusterReplyAction::Kind::kTryAgain:
    case ClusterReplyAction::Kind::kClusterDown:
      if (request->retries >= options_.max_retries) break;
      if (action->kind == ClusterReplyAction::Kind::kClusterDown) Refresh();
      RetryLater(request);
      return;
  }
  Finish(*request, std::move(reply));
}

void ClusterAsync::SendToAllMasters(const std::shared_ptr<Request>& request) {
  const std::vector<ClusterNode> masters = map_.Masters();
  if (masters.empty()) {
    loop_.Post(
        [request] { Finish(*request, absl::UnavailableError("redis cluster: no master known")); });
    return;
  }
  struct FanOut {
    std::shared_ptr<Request> request;
    size_t remaining;
    std::vector<absl::StatusOr<RedisReply>> replies;
  };
  auto fan_out = std::make_shared<FanOut>(
      FanOut{request, masters.size(),
             std::vector<absl::StatusOr<RedisReply>>(masters.size(), RedisReply::Nil())});
  for (size_t i = 0; i < masters.size(); ++i) {
    Connection(masters[i])
        .Send(
            request->argv,
            [fan_out, i](absl::StatusOr<RedisReply> reply) {
              fan_out->replies[i] = std::move(reply);
              if (--fan_out->remaining > 0) return;
              Finish(*fan_out->request, CombineAllMasters(std::move(fan_out->replies)));
            },
            request->extra_timeout);
  }
}

void ClusterAsync::RetryLater(const std::shared_ptr<Request>& request) {
  ++request->retries;
  ++stats_.retries;
  retries_.emplace_back(absl::Now() + options_.retry_delay, request);
  if (retries_.size() == 1) retry_timer_->Arm(options_.retry_delay);
}

void ClusterAsync::RunDueRetries() {
  const absl::Time now = absl::Now();
  std::vector<std::shared_ptr<Request>> due;
  while (!retries_.empty() && retries_.front().first <= now) {
    due.push_back(std::move(retries_.front().second));
    retries_.pop_front();
  }
  if (!retries_.empty()) retry_timer_->Arm(retries_.front().first - now);
  for (const std::shared_ptr<Request>& request : due) Dispatch(request);
}

void ClusterAsync::Refresh() {
  if (refreshing_) {
    refresh_again_ = true;
    return;
  }
  if (refresh_scheduled_) return;
  const absl::Time due = last_refresh_ + options_.min_refresh_interval;
  const absl::Time now = absl::Now();
  if (now >= due) {
    StartRefresh();
  } else {
    refresh_scheduled_ = true;
    refresh_timer_->Arm(due - now);
  }
}

void ClusterAsync::StartRefresh() {
  refreshing_ = true;
  refresh_again_ = false;
  last_refresh_ = absl::Now();
  AskForSlots(RefreshCandidates(map_, options_), 0);
}

void ClusterAsync::AskForSlots(std::vector<ClusterNode> candidates, size_t next) {
  if (next >= candidates.size()) {
    RefreshFailed(NoNodeAnswered(candidates));
    return;
  }
  const ClusterNode node = candidates[next];
  Connection(node).Send({"CLUSTER", "SLOTS"},
                        [this, alive = alive_, candidates = std::move(candidates), next,
                         node](const absl::StatusOr<RedisReply>& reply) mutable {
                          if (!*alive) return;
                          absl::StatusOr<ClusterSlotMap> map = SlotMapFromReply(reply, node);
                          if (!map.ok()) {
                            // One node failing is routine (the next is asked); only all failing
                            // warns.
                            spdlog::debug("redis cluster: CLUSTER SLOTS from {} failed: {}",
                                          node.HostPort(), std::string(map.status().message()));
                            AskForSlots(std::move(candidates), next + 1);
                            return;
                          }
                          ApplyTopology(std::move(*map));
                        });
}

void ClusterAsync::ApplyTopology(ClusterSlotMap map) {
  map_ = std::move(map);
  have_topology_ = true;
  refreshing_ = false;
  ++topology_version_;
  ++stats_.refreshes;
  // Drop the connections of nodes the topology no longer lists.
  for (auto& [name, connection] : TakeUnlistedNodes(map_, nodes_)) {
    spdlog::info("redis cluster: node {} left the topology", name);
    retired_.push_back(std::move(connection));
  }
  if (!retired_.empty()) {
    loop_.Post([this, alive = alive_] {
      if (*alive) retired_.clear();
    });
  }
  std::deque<std::shared_ptr<Request>> waiting = std::move(waiting_);
  waiting_.clear();
  for (const std::shared_ptr<Request>& request : waiting) Dispatch(request);
  if (refresh_again_) {
    refresh_again_ = false;
    Refresh();
  }
  NotifyTopologyListeners();
}

uint64_t ClusterAsync::AddTopologyListener(std::function<void()> listener) {
  topology_listeners_.emplace(++next_listener_id_, std::move(listener));
  return next_listener_id_;
}

void ClusterAsync::RemoveTopologyListener(uint64_t id) { topology_listeners_.erase(id); }

void ClusterAsync::NotifyTopologyListeners() {
  // A listener may add or remove listeners: walk a snapshot of the ids.
  std::vector<uint64_t> ids;
  ids.reserve(topology_listeners_.size());
  for (const auto& [id, listener] : topology_listeners_) ids.push_back(id);
  for (uint64_t id : ids) {
    auto it = topology_listeners_.find(id);
    if (it == topology_listeners_.end()) continue;
    const std::function<void()> listener = it->second;  // it may remove itself
    listener();
  }
}

void ClusterAsync::RefreshFailed(const absl::Status& why) {
  spdlog::warn("{}", std::string(why.message()));
  refreshing_ = false;
  std::deque<std::shared_ptr<Request>> waiting = std::move(waiting_);
  waiting_.clear();
  for (const std::shared_ptr<Request>& request : waiting) {
    Finish(*request, why);
  }
  if (refresh_again_) {
    refresh_again_ = false;
    Refresh();
  }
}

HiredisAsync& ClusterAsync::Connection(const ClusterNode& node) {
  std::unique_ptr<HiredisAsync>& slot = nodes_[node.HostPort()];
  if (slot == nullptr) {
    slot = std::make_unique<HiredisAsync>(loop_, ClusterNodeConnection(options_, node));
  }
  return *slot;
}

std::vector<RedisAddress> ClusterAsync::Masters() const {
  std::vector<RedisAddress> masters;
  for (const ClusterNode& m : map_.Masters()) masters.push_back(ClusterNodeAddress(options_, m));
  return masters;
}

AsyncCommander* ClusterAsync::NodeFor(int slot) {
  const ClusterNode* master = map_.MasterOf(slot);
  return master == nullptr ? nullptr : &Connection(*master);
}

AsyncCommander* ClusterAsync::ForNode(const RedisAddress& address) {
  return &Connection(ClusterNodeOf(address));
}

}  // namespace redrive
