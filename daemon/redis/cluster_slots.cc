#include "daemon/redis/cluster_slots.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace redrive {
namespace {

absl::Status Malformed(absl::string_view why, const RedisReply& reply) {
  return absl::InternalError(
      absl::StrCat("redis: malformed CLUSTER SLOTS reply (", why, "): ", reply.DebugString()));
}

// A node entry of CLUSTER SLOTS: [ip, port, id, ...]. nullopt for a node
// whose endpoint is unknown ("?").
absl::StatusOr<std::optional<ClusterNode>> ParseNode(const RedisReply& entry,
                                                     absl::string_view replied_host) {
  if (!entry.is_array() || entry.elements.size() < 2) {
    return Malformed("a node is not [ip, port, ...]", entry);
  }
  const RedisReply& ip = entry.elements[0];
  const RedisReply& port = entry.elements[1];
  if (!(ip.is_string() || ip.is_nil()) || !port.is_integer()) {
    return Malformed("a node's ip is not a string or its port not an integer", entry);
  }
  if (ip.str == "?") return std::optional<ClusterNode>();
  if (port.integer < 1 || port.integer > 65535) {
    return Malformed("a node's port is outside 1..65535", entry);
  }
  ClusterNode node;
  node.host = ip.str.empty() ? std::string(replied_host) : ip.str;
  node.port = static_cast<int>(port.integer);
  if (entry.elements.size() >= 3 && entry.elements[2].is_string()) node.id = entry.elements[2].str;
  return std::optional<ClusterNode>(std::move(node));
}

void AddNode(std::vector<ClusterNode>& nodes, const ClusterNode& node) {
  const bool known = std::any_of(nodes.begin(), nodes.end(),
                                 [&](const ClusterNode& n) { return n.SameAddress(node); });
  if (!known) nodes.push_back(node);
}
void SortNodes(std::vector<ClusterNode>& nodes) {
  std::sort(nodes.begin(), nodes.end(),
            [](const ClusterNode& a, const ClusterNode& b) { return a.HostPort() < b.HostPort(); });
}

}  // namespace

uint16_t Crc16Xmodem(absl::string_view data) {
  uint16_t crc = 0;
  for (const char c : data) {
    crc = static_cast<uint16_t>(crc ^ (static_cast<uint16_t>(static_cast<unsigned char>(c)) << 8));
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

absl::string_view HashTagOf(absl::string_view key) {
  const size_t open = key.find('{');
  if (open == absl::string_view::npos) return key;
  const size_t close = key.find('}', open + 1);
  if (close == absl::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

int KeySlot(absl::string_view key) { return Crc16Xmodem(HashTagOf(key)) % kClusterSlots; }

std::string ClusterNode::HostPort() const {
  return absl::StrContains(host, ':') ? absl::StrCat("[", host, "]:", port)
                                      : absl::StrCat(host, ":", port);
}

absl::StatusOr<ClusterNode> ParseHostPort(absl::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster node address \"", text, "\" is not host:port"));
  }
  absl::string_view host = text.substr(0, colon);
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (!absl::SimpleAtoi(text.substr(colon + 1), &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster node address \"", text, "\": port is not in 1..65535"));
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster node address \"", text, "\": empty host"));
  }
  ClusterNode node;
  node.host = std::string(host);
  node.port = port;
  return node;
}

ClusterSlotMap::ClusterSlotMap() : owner_(kClusterSlots, -1) {}

absl::StatusOr<ClusterSlotMap> ClusterSlotMap::FromClusterSlots(const RedisReply& reply,
                                                                absl::string_view replied_host) {
  if (!reply.is_array()) return Malformed("not an array", reply);
  ClusterSlotMap map;
  for (const RedisReply& range : reply.elements) {
    if (!range.is_array() || range.elements.size() < 3 || !range.elements[0].is_integer() ||
        !range.elements[1].is_integer()) {
      return Malformed("a range is not [start, end, master, ...]", range);
    }
    const int64_t start = range.elements[0].integer;
    const int64_t end = range.elements[1].integer;
    if (start < 0 || end >= kClusterSlots || start > end) {
      return Malformed(absl::StrCat("slot range ", start, "-", end, " is not within 0-16383"),
                       range);
    }
    absl::StatusOr<std::optional<ClusterNode>> master = ParseNode(range.elements[2], replied_host);
    if (!master.ok()) return master.status();
    Shard shard;
    for (size_t i = 3; i < range.elements.size(); ++i) {
      absl::StatusOr<std::optional<ClusterNode>> replica =
          ParseNode(range.elements[i], replied_host);
      if (!replica.ok()) return replica.status();
      if (replica->has_value()) shard.replicas.push_back(std::move(**replica));
    }
    for (int64_t slot = start; slot <= end; ++slot) {
      if (map.owner_[slot] != -1) {
        return Malformed(absl::StrCat("slot ", slot, " is listed twice"), reply);
      }
    }
    if (!master->has_value()) continue;  // unknown endpoint: unassigned here
    const int16_t index = map.ShardFor(**master);
    Shard& s = map.shards_[index];
    if (s.master.id.empty()) s.master.id = (*master)->id;
    for (const ClusterNode& r : shard.replicas) AddNode(s.replicas, r);
    for (int64_t slot = start; slot <= end; ++slot) map.owner_[slot] = index;
  }
  return map;
}

int16_t ClusterSlotMap::ShardFor(const ClusterNode& node) {
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (shards_[i].master.SameAddress(node)) return static_cast<int16_t>(i);
  }
  shards_.push_back(Shard{node, {}});
  return static_cast<int16_t>(shards_.size() - 1);
}

const ClusterNode* ClusterSlotMap::MasterOf(int slot) const {
  if (slot < 0 || slot >= kClusterSlots || owner_[slot] < 0) return nullptr;
  return &shards_[owner_[slot]].master;
}

const std::vector<ClusterNode>& ClusterSlotMap::ReplicasOf(int slot) const {
  static const std::vector<ClusterNode>* const kNone = new std::vector<ClusterNode>();
  if (slot < 0 || slot >= kClusterSlots || owner_[slot] < 0) return *kNone;
  return shards_[owner_[slot]].replicas;
}

void ClusterSlotMap::SetMaster(int slot, const ClusterNode& master) {
  if (slot < 0 || slot >= kClusterSlots) return;
  // The slot leaves its shard: its replicas are those of the new owner's
  // shard (none when the owner is new to the map).
  owner_[slot] = ShardFor(master);
}

std::vector<bool> ClusterSlotMap::ServingShards() const {
  std::vector<bool> serving(shards_.size(), false);
  for (const int16_t owner : owner_) {
    if (owner >= 0) serving[owner] = true;
  }
  return serving;
}

std::vector<ClusterNode> ClusterSlotMap::Masters() const {
  const std::vector<bool> serving = ServingShards();
  std::vector<ClusterNode> masters;
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (serving[i]) AddNode(masters, shards_[i].master);
  }
  SortNodes(masters);
  return masters;
}

std::vector<ClusterNode> ClusterSlotMap::Nodes() const {
  const std::vector<bool> serving = ServingShards();
  std::vector<ClusterNode> nodes;
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (!serving[i]) continue;
    AddNode(nodes, shards_[i].master);
    for (const ClusterNode& r : shards_[i].replicas) AddNode(nodes, r);
  }
  SortNodes(nodes);
  return nodes;
}

int ClusterSlotMap::UnassignedSlots() const {
  return static_cast<int>(std::count(owner_.begin(), owner_.end(), -1));
}

absl::StatusOr<std::optional<ClusterRedirect>> ParseRedirect(absl::string_view error_text) {
  ClusterRedirect redirect;
  absl::string_view rest;
  if (absl::StartsWith(error_text, "MOVED ")) {
    redirect.kind = ClusterRedirect::Kind::kMoved;
    rest = error_text.substr(6);
  } else if (absl::StartsWith(error_text, "ASK ")) {
    redirect.kind = ClusterRedirect::Kind::kAsk;
    rest = error_text.substr(4);
  } else {
    return std::optional<ClusterRedirect>();
  }
  const std::vector<absl::string_view> parts = absl::StrSplit(rest, ' ');
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &redirect.slot) || redirect.slot < 0 ||
      redirect.slot >= kClusterSlots) {
    return absl::InternalError(absl::StrCat("redis: malformed redirect \"", error_text, "\""));
  }
  absl::StatusOr<ClusterNode> target = ParseHostPort(parts[1]);
  if (!target.ok()) {
    return absl::InternalError(absl::StrCat("redis: malformed redirect \"", error_text,
                                            "\": ", target.status().message()));
  }
  redirect.target = std::move(*target);
  return std::optional<ClusterRedirect>(std::move(redirect));
}

absl::StatusOr<ClusterReplyAction> ClassifyClusterReply(const RedisReply& reply) {
  ClusterReplyAction action;
  if (!reply.is_error()) return action;
  absl::StatusOr<std::optional<ClusterRedirect>> redirect = ParseRedirect(reply.str);
  if (!redirect.ok()) return redirect.status();
  if (redirect->has_value()) {
    action.redirect = std::move(**redirect);
    action.kind = action.redirect.kind == ClusterRedirect::Kind::kMoved
                      ? ClusterReplyAction::Kind::kMoved
                      : ClusterReplyAction::Kind::kAsk;
  } else if (absl::StartsWith(reply.str, "TRYAGAIN")) {
    action.kind = ClusterReplyAction::Kind::kTryAgain;
  } else if (absl::StartsWith(reply.str, "CLUSTERDOWN")) {
    action.kind = ClusterReplyAction::Kind::kClusterDown;
  }
  return action;
}

}  // namespace redrive
