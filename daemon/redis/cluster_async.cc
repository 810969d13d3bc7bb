#include "daemon/redis/cluster_async.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/redis/cluster_route.h"
#include "daemon/redis/errors.h"
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

bool IsRetryable(const RedisReply& reply) {
  return reply.is_error() &&
         (absl::StartsWith(reply.str, "TRYAGAIN") || absl::StartsWith(reply.str, "CLUSTERDOWN"));
}

ClusterNode NodeOf(const RedisAddress& address) {
  ClusterNode node;
  node.host = address.host;
  node.port = address.port;
  return node;
}

}  // namespace

absl::Status ClusterAsync::Validate(const ClusterOptions& options) {
  if (options.seeds.empty()) {
    return absl::InvalidArgumentError("redis cluster: at least one seed address is needed");
  }
  for (const RedisAddress& seed : options.seeds) {
    if (seed.is_unix()) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis cluster: seed ", seed.Redacted(),
                       " is a unix socket; cluster nodes are host:port"));
    }
    if (seed.is_sentinel()) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis cluster: seed ", seed.Redacted(),
                       " is a Sentinel address; a cluster has no Sentinel-managed primary"));
    }
    if (seed.db != 0) {
      return absl::InvalidArgumentError(absl::StrCat("redis cluster: seed ", seed.Redacted(),
                                                     " selects db ", seed.db,
                                                     "; a cluster has only db 0"));
    }
  }
  if (options.max_redirects < 1) {
    return absl::InvalidArgumentError("redis cluster: max_redirects must be at least 1");
  }
  if (options.max_retries < 0 || options.retry_delay < absl::ZeroDuration() ||
      options.min_refresh_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "redis cluster: max_retries, retry_delay and min_refresh_interval must not be negative");
  }
  return absl::OkStatus();
}

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
  absl::StatusOr<std::optional<ClusterRedirect>> redirect = ParseRedirect(reply->str);
  if (!redirect.ok()) {
    Finish(*request, redirect.status());
    return;
  }
  if (redirect->has_value()) {
    if (request->redirects >= options_.max_redirects) {
      Finish(*request, std::move(reply));
      return;
    }
    ++request->redirects;
    const ClusterRedirect& r = **redirect;
    if (r.kind == ClusterRedirect::Kind::kMoved) {
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
  if (IsRetryable(*reply) && request->retries < options_.max_retries) {
    if (absl::StartsWith(reply->str, "CLUSTERDOWN")) Refresh();
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
              for (absl::StatusOr<RedisReply>& r : fan_out->replies) {
                if (!r.ok() || r->is_error()) {
                  Finish(*fan_out->request, std::move(r));
                  return;
                }
              }
              Finish(*fan_out->request, std::move(fan_out->replies.front()));
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
  // The masters of the current map first (they know best), then the seeds.
  std::vector<ClusterNode> candidates = map_.Masters();
  for (const RedisAddress& seed : options_.seeds) {
    const ClusterNode node = NodeOf(seed);
    bool known = false;
    for (const ClusterNode& c : candidates) known = known || c.SameAddress(node);
    if (!known) candidates.push_back(node);
  }
  AskForSlots(std::move(candidates), 0);
}

void ClusterAsync::AskForSlots(std::vector<ClusterNode> candidates, size_t next) {
  if (next >= candidates.size()) {
    std::vector<std::string> tried;
    tried.reserve(candidates.size());
    for (const ClusterNode& c : candidates) tried.push_back(c.HostPort());
    RefreshFailed(
        absl::StrCat("no node answered CLUSTER SLOTS (tried ", absl::StrJoin(tried, ", "), ")"));
    return;
  }
  const ClusterNode node = candidates[next];
  Connection(node).Send(
      {"CLUSTER", "SLOTS"}, [this, alive = alive_, candidates = std::move(candidates), next,
                             node](absl::StatusOr<RedisReply> reply) mutable {
        if (!*alive) return;
        absl::StatusOr<ClusterSlotMap> map =
            reply.ok() && !reply->is_error()
                ? ClusterSlotMap::FromClusterSlots(*reply, node.host)
                : absl::StatusOr<ClusterSlotMap>(reply.ok() ? RedisErrorStatus(*reply)
                                                            : reply.status());
        if (map.ok() && map->UnassignedSlots() == kClusterSlots) {
          map = absl::UnavailableError("the node serves no slot (not part of a cluster yet)");
        }
        if (!map.ok()) {
          spdlog::warn("redis cluster: CLUSTER SLOTS from {} failed: {}", node.HostPort(),
                       std::string(map.status().message()));
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
  const std::vector<ClusterNode> listed = map_.Nodes();
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    bool keep = false;
    for (const ClusterNode& n : listed) keep = keep || n.HostPort() == it->first;
    if (keep) {
      ++it;
      continue;
    }
    spdlog::info("redis cluster: node {} left the topology", it->first);
    retired_.push_back(std::move(it->second));
    it = nodes_.erase(it);
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

void ClusterAsync::RefreshFailed(const std::string& why) {
  spdlog::warn("redis cluster: topology refresh failed: {}", why);
  refreshing_ = false;
  std::deque<std::shared_ptr<Request>> waiting = std::move(waiting_);
  waiting_.clear();
  for (const std::shared_ptr<Request>& request : waiting) {
    Finish(*request, absl::UnavailableError(absl::StrCat("redis cluster: ", why)));
  }
  if (refresh_again_) {
    refresh_again_ = false;
    Refresh();
  }
}

RedisAddress ClusterAsync::AddressOf(const ClusterNode& node) const {
  RedisAddress address;
  address.host = node.host;
  address.port = node.port;
  address.user = options_.seeds.front().user;
  address.password = options_.seeds.front().password;
  return address;
}

HiredisAsync& ClusterAsync::Connection(const ClusterNode& node) {
  std::unique_ptr<HiredisAsync>& slot = nodes_[node.HostPort()];
  if (slot == nullptr) {
    RedisConnectionOptions options = options_.connection;
    options.address = AddressOf(node);
    options.sentinel = nullptr;
    slot = std::make_unique<HiredisAsync>(loop_, std::move(options));
  }
  return *slot;
}

std::vector<RedisAddress> ClusterAsync::Masters() const {
  std::vector<RedisAddress> masters;
  for (const ClusterNode& m : map_.Masters()) masters.push_back(AddressOf(m));
  return masters;
}

AsyncCommander* ClusterAsync::NodeFor(int slot) {
  const ClusterNode* master = map_.MasterOf(slot);
  return master == nullptr ? nullptr : &Connection(*master);
}

AsyncCommander* ClusterAsync::ForNode(const RedisAddress& address) {
  return &Connection(NodeOf(address));
}

}  // namespace redrive
