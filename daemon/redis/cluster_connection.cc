#include "daemon/redis/cluster_connection.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/redis/connection.h"

namespace redrive {
namespace {

bool IsCommand(const RedisArgv& argv, absl::string_view name) {
  return !argv.empty() && absl::EqualsIgnoreCase(argv[0], name);
}

// The commands that open, close or watch a transaction.
bool IsTransactionCommand(const RedisArgv& argv) {
  return IsCommand(argv, "MULTI") || IsCommand(argv, "EXEC") || IsCommand(argv, "DISCARD") ||
         IsCommand(argv, "WATCH") || IsCommand(argv, "UNWATCH");
}

// The first key of a keyed command (RouteCommand accepted it).
absl::string_view FirstKey(const RedisArgv& argv) {
  absl::StatusOr<std::vector<absl::string_view>> keys = CommandKeys(argv);
  return keys.ok() && !keys->empty() ? keys->front() : absl::string_view();
}

}  // namespace

ClusterConnection::ClusterConnection(ClusterOptions options) : options_(std::move(options)) {
  if (absl::Status s = ValidateClusterOptions(options_); !s.ok()) {
    spdlog::critical("ClusterConnection: {}", std::string(s.message()));
    std::abort();
  }
}

ClusterConnection::~ClusterConnection() = default;

absl::StatusOr<RedisReply> ClusterConnection::Command(const RedisArgv& argv) {
  absl::StatusOr<ClusterRoute> route = RouteCommand(argv);
  if (!route.ok()) return route.status();
  if (absl::Status s = EnsureTopology(); !s.ok()) return s;
  if (route->kind == ClusterRoute::Kind::kAllMasters) return SendToAllMasters(argv);
  return Send(argv, *route, Attempt{});
}

absl::StatusOr<std::vector<RedisReply>> ClusterConnection::Pipeline(
    absl::Span<const RedisArgv> commands) {
  if (commands.empty()) return std::vector<RedisReply>();
  const bool transaction = IsCommand(commands.front(), "MULTI");
  if (transaction && (commands.size() < 2 || !IsCommand(commands.back(), "EXEC"))) {
    return absl::InvalidArgumentError(
        "redis cluster pipeline: a MULTI block must end with EXEC (MULTI first, EXEC last)");
  }
  // Every command is routed before anything is sent.
  std::vector<ClusterRoute> routes;
  routes.reserve(commands.size());
  ClusterRoute block;  // the transaction's: its keyed commands' one slot
  block.kind = ClusterRoute::Kind::kAnyMaster;
  absl::string_view block_key;
  for (size_t i = 0; i < commands.size(); ++i) {
    const RedisArgv& argv = commands[i];
    if (transaction && (i == 0 || i + 1 == commands.size())) continue;
    if (IsTransactionCommand(argv)) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis cluster pipeline: ", absl::AsciiStrToUpper(argv[0]), " at position ",
                       i, " of ", commands.size(),
                       "; a pipeline is either independent commands or one MULTI "
                       "block (MULTI first, EXEC last)"));
    }
    absl::StatusOr<ClusterRoute> route = RouteCommand(argv);
    if (!route.ok()) return route.status();
    if (!transaction) {
      routes.push_back(*route);
      continue;
    }
    if (route->kind == ClusterRoute::Kind::kAllMasters) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis cluster pipeline: ", absl::AsciiStrToUpper(argv[0]),
                       " runs on every master; it cannot be part of a MULTI block"));
    }
    if (route->kind != ClusterRoute::Kind::kSlot) continue;
    if (block.kind != ClusterRoute::Kind::kSlot) {
      block = *route;
      block_key = FirstKey(argv);
    } else if (route->slot != block.slot) {
      return absl::FailedPreconditionError(
          absl::StrCat("CROSSSLOT: MULTI block keys \"", block_key, "\" (slot ", block.slot,
                       ") and \"", FirstKey(argv), "\" (slot ", route->slot,
                       ") are in different cluster slots; give them a common {hash tag}"));
    }
  }
  if (absl::Status s = EnsureTopology(); !s.ok()) return s;
  return transaction ? PipelineTransaction(commands, block) : PipelineIndependent(commands, routes);
}

absl::StatusOr<std::vector<RedisReply>> ClusterConnection::PipelineIndependent(
    absl::Span<const RedisArgv> commands, const std::vector<ClusterRoute>& routes) {
  // Per master (by host:port), the positions of its commands.
  struct Group {
    ClusterNode node;
    std::vector<size_t> positions;
  };
  std::map<std::string, Group> groups;
  for (size_t i = 0; i < commands.size(); ++i) {
    if (routes[i].kind == ClusterRoute::Kind::kAllMasters) continue;  // sent alone below
    std::optional<ClusterNode> master = MasterFor(routes[i]);
    if (!master.has_value()) continue;  // sent alone below (it waits for a master)
    Group& group = groups[master->HostPort()];
    group.node = *master;
    group.positions.push_back(i);
  }
  std::vector<std::optional<RedisReply>> replies(commands.size());
  for (const auto& [host_port, group] : groups) {
    std::vector<RedisArgv> batch;
    batch.reserve(group.positions.size());
    for (size_t i : group.positions) batch.push_back(commands[i]);
    absl::StatusOr<std::vector<RedisReply>> got = Connection(group.node).Pipeline(batch);
    if (!got.ok()) return Lost(got.status());
    for (size_t j = 0; j < group.positions.size(); ++j) {
      replies[group.positions[j]] = std::move((*got)[j]);
    }
  }
  // Then, in order: the redirected and retried commands, and those sent alone.
  std::vector<RedisReply> out;
  out.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    Attempt attempt;
    absl::StatusOr<RedisReply> reply = RedisReply::Nil();
    if (routes[i].kind == ClusterRoute::Kind::kAllMasters) {
      reply = SendToAllMasters(commands[i]);
    } else if (!replies[i].has_value()) {
      reply = Send(commands[i], routes[i], attempt);
    } else {
      absl::StatusOr<bool> again = Follow(*replies[i], attempt);
      if (!again.ok()) return again.status();
      reply = *again ? Send(commands[i], routes[i], attempt) : std::move(*replies[i]);
    }
    if (!reply.ok()) return reply.status();
    out.push_back(std::move(*reply));
  }
  return out;
}

absl::StatusOr<std::vector<RedisReply>> ClusterConnection::PipelineTransaction(
    absl::Span<const RedisArgv> commands, const ClusterRoute& route) {
  Attempt attempt;
  for (;;) {
    std::optional<ClusterNode> master = MasterFor(route);
    if (!master.has_value()) {
      if (RetryLater(attempt, /*refresh=*/true)) continue;
      return absl::UnavailableError(
          absl::StrCat("redis cluster: no master serves slot ", route.slot));
    }
    absl::StatusOr<std::vector<RedisReply>> replies = Connection(*master).Pipeline(commands);
    if (!replies.ok()) return Lost(replies.status());
    if (!replies->back().is_error()) return replies;  // EXEC ran the block
    // EXECABORT: did a queued command find its slot elsewhere or busy?
    std::optional<ClusterReplyAction> refused;
    for (size_t i = 1; i + 1 < replies->size() && !refused.has_value(); ++i) {
      absl::StatusOr<ClusterReplyAction> action = ClassifyClusterReply((*replies)[i]);
      if (!action.ok()) return action.status();
      if (action->kind != ClusterReplyAction::Kind::kFinal) refused = std::move(*action);
    }
    if (!refused.has_value()) return replies;
    // Nothing ran: the whole block is sent again.
    if (refused->kind == ClusterReplyAction::Kind::kMoved) {
      if (attempt.redirects >= options_.max_redirects) return replies;
      ++attempt.redirects;
      ++stats_.moved;
      map_.SetMaster(refused->redirect.slot, refused->redirect.target);
      refresh_due_ = true;
      RefreshIfDue();
      continue;
    }
    // ASK (keys half migrated), TRYAGAIN, CLUSTERDOWN: once the migration or
    // the failover is over.
    if (!RetryLater(attempt, refused->kind == ClusterReplyAction::Kind::kClusterDown)) {
      return replies;
    }
  }
}

absl::StatusOr<RedisReply> ClusterConnection::Send(const RedisArgv& argv, const ClusterRoute& route,
                                                   Attempt attempt) {
  for (;;) {
    std::optional<ClusterNode> node =
        attempt.target.has_value() ? attempt.target : MasterFor(route);
    if (!node.has_value()) {
      // No master known for the slot (a failover in progress): ask again.
      if (RetryLater(attempt, /*refresh=*/true)) continue;
      return absl::UnavailableError(
          absl::StrCat("redis cluster: no master serves slot ", route.slot));
    }
    absl::StatusOr<RedisReply> reply = RedisReply::Nil();
    if (attempt.asking) {
      // ASKING applies to the command right behind it on the connection.
      const RedisArgv asking[] = {{"ASKING"}, argv};
      absl::StatusOr<std::vector<RedisReply>> both = Connection(*node).Pipeline(asking);
      reply = both.ok() ? absl::StatusOr<RedisReply>(std::move(both->back())) : both.status();
    } else {
      reply = Connection(*node).Command(argv);
    }
    if (!reply.ok()) return Lost(reply.status());
    absl::StatusOr<bool> again = Follow(*reply, attempt);
    if (!again.ok()) return again.status();
    if (!*again) return reply;
  }
}

absl::StatusOr<bool> ClusterConnection::Follow(const RedisReply& reply, Attempt& attempt) {
  absl::StatusOr<ClusterReplyAction> action = ClassifyClusterReply(reply);
  if (!action.ok()) return action.status();
  switch (action->kind) {
    case ClusterReplyAction::Kind::kFinal:
      return false;
    case ClusterReplyAction::Kind::kMoved:
    case ClusterReplyAction::Kind::kAsk: {
      if (attempt.redirects >= options_.max_redirects) return false;
      ++attempt.redirects;
      const ClusterRedirect& r = action->redirect;
      attempt.target = r.target;
      attempt.asking = action->kind == ClusterReplyAction::Kind::kAsk;
      if (attempt.asking) {
        ++stats_.ask;
      } else {
        ++stats_.moved;
        map_.SetMaster(r.slot, r.target);
        refresh_due_ = true;
        RefreshIfDue();
      }
      return true;
    }
    case ClusterReplyAction::Kind::kTryAgain:
    case ClusterReplyAction::Kind::kClusterDown:
      return RetryLater(attempt, action->kind == ClusterReplyAction::Kind::kClusterDown);
  }
  return false;
}

bool ClusterConnection::RetryLater(Attempt& attempt, bool refresh) {
  if (attempt.retries >= options_.max_retries) return false;
  ++attempt.retries;
  ++stats_.retries;
  refresh_due_ = refresh_due_ || refresh;
  absl::SleepFor(options_.retry_delay);
  RefreshIfDue();
  attempt.target.reset();  // the map's master for the route, now
  attempt.asking = false;
  return true;
}

std::optional<ClusterNode> ClusterConnection::MasterFor(const ClusterRoute& route) const {
  if (route.kind == ClusterRoute::Kind::kAnyMaster) {
    std::vector<ClusterNode> masters = map_.Masters();
    if (masters.empty()) return std::nullopt;
    return std::move(masters.front());
  }
  const ClusterNode* master = map_.MasterOf(route.slot);
  if (master == nullptr) return std::nullopt;
  return *master;
}

absl::StatusOr<RedisReply> ClusterConnection::SendToAllMasters(const RedisArgv& argv) {
  const std::vector<ClusterNode> masters = map_.Masters();
  if (masters.empty()) return absl::UnavailableError("redis cluster: no master known");
  std::vector<absl::StatusOr<RedisReply>> replies;
  replies.reserve(masters.size());
  for (const ClusterNode& master : masters) {
    absl::StatusOr<RedisReply> reply = Connection(master).Command(argv);
    replies.push_back(reply.ok() ? std::move(reply) : Lost(reply.status()));
  }
  return CombineAllMasters(std::move(replies));
}

absl::Status ClusterConnection::Lost(absl::Status status) {
  refresh_due_ = true;
  return status;
}

absl::Status ClusterConnection::EnsureTopology() {
  if (!have_topology_) return Refresh();
  RefreshIfDue();
  return absl::OkStatus();
}

void ClusterConnection::RefreshIfDue() {
  if (!refresh_due_ || absl::Now() < last_refresh_ + options_.min_refresh_interval) return;
  Refresh().IgnoreError();  // logged; the current map stays, refresh_due_ too
}

absl::Status ClusterConnection::Refresh() {
  last_refresh_ = absl::Now();
  const std::vector<ClusterNode> candidates = RefreshCandidates(map_, options_);
  for (const ClusterNode& node : candidates) {
    absl::StatusOr<ClusterSlotMap> map =
        SlotMapFromReply(Connection(node).Command({"CLUSTER", "SLOTS"}), node);
    if (!map.ok()) {
      // One node failing is routine (the next is asked); only all failing warns.
      spdlog::debug("redis cluster: CLUSTER SLOTS from {} failed: {}", node.HostPort(),
                    std::string(map.status().message()));
      continue;
    }
    map_ = std::move(*map);
    have_topology_ = true;
    refresh_due_ = false;
    ++topology_version_;
    ++stats_.refreshes;
    // Close the connections of nodes the topology no longer lists.
    for (const auto& [name, connection] : TakeUnlistedNodes(map_, nodes_)) {
      spdlog::info("redis cluster: node {} left the topology", name);
    }
    return absl::OkStatus();
  }
  absl::Status failed = NoNodeAnswered(candidates);
  spdlog::warn("{}", std::string(failed.message()));
  return failed;
}

RedisConnection& ClusterConnection::Connection(const ClusterNode& node) {
  std::unique_ptr<RedisConnection>& slot = nodes_[node.HostPort()];
  if (slot == nullptr) {
    slot = std::make_unique<RedisConnection>(ClusterNodeConnection(options_, node));
  }
  return *slot;
}

std::vector<RedisAddress> ClusterConnection::Masters() {
  std::vector<RedisAddress> masters;
  if (!EnsureTopology().ok()) return masters;
  for (const ClusterNode& m : map_.Masters()) masters.push_back(ClusterNodeAddress(options_, m));
  return masters;
}

RedisCommander* ClusterConnection::ForNode(const RedisAddress& node) {
  return &Connection(ClusterNodeOf(node));
}

}  // namespace redrive
