#include "daemon/redis/cluster_route.h"

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "daemon/redis/cluster_slots.h"

namespace redrive {
namespace {

enum class Rule {
  kFirstArg,    // argv[1]
  kAllArgs,     // argv[1..]
  kSubcommand,  // argv[1] a subcommand, argv[2] the key
  kStreams,     // XREAD / XREADGROUP
  kNumKeys,     // EVAL family
  kAnyMaster,   // keyless
  kAllMasters,  // keyless, every master
  kPerNode,     // refused: node or connection state
};

struct CommandRule {
  const char* name;
  Rule rule;
};

constexpr CommandRule kRules[] = {
    // Streams.
    {"XADD", Rule::kFirstArg},
    {"XACK", Rule::kFirstArg},
    {"XCLAIM", Rule::kFirstArg},
    {"XAUTOCLAIM", Rule::kFirstArg},
    {"XPENDING", Rule::kFirstArg},
    {"XRANGE", Rule::kFirstArg},
    {"XREVRANGE", Rule::kFirstArg},
    {"XDEL", Rule::kFirstArg},
    {"XLEN", Rule::kFirstArg},
    {"XTRIM", Rule::kFirstArg},
    {"XSETID", Rule::kFirstArg},
    {"XINFO", Rule::kSubcommand},
    {"XGROUP", Rule::kSubcommand},
    {"XREAD", Rule::kStreams},
    {"XREADGROUP", Rule::kStreams},
    // Sorted sets.
    {"ZADD", Rule::kFirstArg},
    {"ZRANGE", Rule::kFirstArg},
    {"ZRANGEBYSCORE", Rule::kFirstArg},
    {"ZREVRANGE", Rule::kFirstArg},
    {"ZREVRANGEBYSCORE", Rule::kFirstArg},
    {"ZREM", Rule::kFirstArg},
    {"ZREMRANGEBYSCORE", Rule::kFirstArg},
    {"ZREMRANGEBYRANK", Rule::kFirstArg},
    {"ZCARD", Rule::kFirstArg},
    {"ZCOUNT", Rule::kFirstArg},
    {"ZSCORE", Rule::kFirstArg},
    {"ZINCRBY", Rule::kFirstArg},
    {"ZPOPMIN", Rule::kFirstArg},
    {"ZSCAN", Rule::kFirstArg},
    // Hashes.
    {"HSET", Rule::kFirstArg},
    {"HSETNX", Rule::kFirstArg},
    {"HGET", Rule::kFirstArg},
    {"HMGET", Rule::kFirstArg},
    {"HGETALL", Rule::kFirstArg},
    {"HDEL", Rule::kFirstArg},
    {"HEXISTS", Rule::kFirstArg},
    {"HLEN", Rule::kFirstArg},
    {"HINCRBY", Rule::kFirstArg},
    {"HKEYS", Rule::kFirstArg},
    {"HVALS", Rule::kFirstArg},
    {"HSCAN", Rule::kFirstArg},
    // Lists and sets.
    {"RPUSH", Rule::kFirstArg},
    {"LPUSH", Rule::kFirstArg},
    {"LRANGE", Rule::kFirstArg},
    {"LLEN", Rule::kFirstArg},
    {"SADD", Rule::kFirstArg},
    {"SREM", Rule::kFirstArg},
    {"SMEMBERS", Rule::kFirstArg},
    {"SCARD", Rule::kFirstArg},
    // Strings and generic key commands.
    {"GET", Rule::kFirstArg},
    {"SET", Rule::kFirstArg},
    {"INCR", Rule::kFirstArg},
    {"INCRBY", Rule::kFirstArg},
    {"EXPIRE", Rule::kFirstArg},
    {"PEXPIRE", Rule::kFirstArg},
    {"TTL", Rule::kFirstArg},
    {"PTTL", Rule::kFirstArg},
    {"TYPE", Rule::kFirstArg},
    {"DEL", Rule::kAllArgs},
    {"UNLINK", Rule::kAllArgs},
    {"EXISTS", Rule::kAllArgs},
    {"TOUCH", Rule::kAllArgs},
    {"MGET", Rule::kAllArgs},
    // Scripts.
    {"EVAL", Rule::kNumKeys},
    {"EVALSHA", Rule::kNumKeys},
    {"EVAL_RO", Rule::kNumKeys},
    {"EVALSHA_RO", Rule::kNumKeys},
    {"FCALL", Rule::kNumKeys},
    {"FCALL_RO", Rule::kNumKeys},
    {"SCRIPT", Rule::kAllMasters},
    // Keyless.
    {"PING", Rule::kAnyMaster},
    {"ECHO", Rule::kAnyMaster},
    {"TIME", Rule::kAnyMaster},
    {"INFO", Rule::kAnyMaster},
    {"DBSIZE", Rule::kAnyMaster},
    // Node or connection state.
    {"SCAN", Rule::kPerNode},
    {"KEYS", Rule::kPerNode},
    {"CLIENT", Rule::kPerNode},
    {"MULTI", Rule::kPerNode},
    {"EXEC", Rule::kPerNode},
    {"WATCH", Rule::kPerNode},
    {"UNWATCH", Rule::kPerNode},
    {"DISCARD", Rule::kPerNode},
    {"SELECT", Rule::kPerNode},
    {"SUBSCRIBE", Rule::kPerNode},
    {"PSUBSCRIBE", Rule::kPerNode},
    {"ASKING", Rule::kPerNode},
    {"CLUSTER", Rule::kPerNode},
    {"FLUSHALL", Rule::kPerNode},
    {"FLUSHDB", Rule::kPerNode},
};

const CommandRule* RuleOf(const std::string& upper_name) {
  for (const CommandRule& r : kRules) {
    if (upper_name == r.name) return &r;
  }
  return nullptr;
}

absl::Status Malformed(const std::string& name, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("cluster routing: ", name, ": ", why));
}

// XREAD / XREADGROUP: the keys are the first half of what follows STREAMS.
absl::StatusOr<std::vector<absl::string_view>> StreamsKeys(const std::string& name,
                                                           const RedisArgv& argv) {
  size_t i = 1;
  while (i < argv.size()) {
    const std::string option = absl::AsciiStrToUpper(argv[i]);
    if (option == "STREAMS") break;
    if (option == "COUNT" || option == "BLOCK") {
      i += 2;
    } else if (option == "GROUP" && name == "XREADGROUP") {
      i += 3;
    } else if (option == "NOACK" && name == "XREADGROUP") {
      i += 1;
    } else {
      return Malformed(name, absl::StrCat("unknown option \"", argv[i], "\" before STREAMS"));
    }
  }
  if (i >= argv.size()) return Malformed(name, "no STREAMS argument");
  const size_t rest = argv.size() - i - 1;
  if (rest == 0 || rest % 2 != 0) {
    return Malformed(name, "STREAMS needs as many ids as keys, at least one of each");
  }
  return std::vector<absl::string_view>(
      argv.begin() + static_cast<std::ptrdiff_t>(i + 1),
      argv.begin() + static_cast<std::ptrdiff_t>(i + 1 + rest / 2));
}

absl::StatusOr<std::vector<absl::string_view>> NumKeysKeys(const std::string& name,
                                                           const RedisArgv& argv) {
  int numkeys = 0;
  if (argv.size() < 3 || !absl::SimpleAtoi(argv[2], &numkeys) || numkeys < 0) {
    return Malformed(name, "numkeys (the third argument) is not a non-negative integer");
  }
  if (static_cast<size_t>(numkeys) > argv.size() - 3) {
    return Malformed(name, absl::StrCat("numkeys is ", numkeys, " but only ", argv.size() - 3,
                                        " arguments follow"));
  }
  return std::vector<absl::string_view>(argv.begin() + 3, argv.begin() + 3 + numkeys);
}

struct Keys {
  Rule rule;
  std::vector<absl::string_view> keys;
};

absl::StatusOr<Keys> Classify(const RedisArgv& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("cluster routing: empty command");
  const std::string name = absl::AsciiStrToUpper(argv[0]);
  const CommandRule* rule = RuleOf(name);
  if (rule == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster routing: no key rule for command ", name,
                     " (daemon/redis/cluster_route.h lists the supported commands)"));
  }
  Keys out{rule->rule, {}};
  switch (rule->rule) {
    case Rule::kFirstArg:
      if (argv.size() < 2) return Malformed(name, "no key argument");
      out.keys = {argv[1]};
      break;
    case Rule::kAllArgs:
      if (argv.size() < 2) return Malformed(name, "no key argument");
      out.keys.assign(argv.begin() + 1, argv.end());
      break;
    case Rule::kSubcommand: {
      const std::string sub = argv.size() > 1 ? absl::AsciiStrToUpper(argv[1]) : "";
      const bool keyed = name == "XINFO"
                             ? (sub == "STREAM" || sub == "GROUPS" || sub == "CONSUMERS")
                             : (sub == "CREATE" || sub == "DESTROY" || sub == "CREATECONSUMER" ||
                                sub == "DELCONSUMER" || sub == "SETID");
      if (!keyed) {
        return Malformed(name, absl::StrCat("no key rule for subcommand \"", sub, "\""));
      }
      if (argv.size() < 3) return Malformed(name, absl::StrCat(sub, " without a key"));
      out.keys = {argv[2]};
      break;
    }
    case Rule::kStreams: {
      absl::StatusOr<std::vector<absl::string_view>> keys = StreamsKeys(name, argv);
      if (!keys.ok()) return keys.status();
      out.keys = std::move(*keys);
      break;
    }
    case Rule::kNumKeys: {
      absl::StatusOr<std::vector<absl::string_view>> keys = NumKeysKeys(name, argv);
      if (!keys.ok()) return keys.status();
      out.keys = std::move(*keys);
      if (out.keys.empty()) out.rule = Rule::kAnyMaster;
      break;
    }
    case Rule::kAllMasters: {
      const std::string sub = argv.size() > 1 ? absl::AsciiStrToUpper(argv[1]) : "";
      if (sub != "LOAD" && sub != "EXISTS" && sub != "FLUSH") {
        return Malformed(name, absl::StrCat("no rule for subcommand \"", sub, "\""));
      }
      break;
    }
    case Rule::kAnyMaster:
      break;
    case Rule::kPerNode:
      return absl::InvalidArgumentError(
          absl::StrCat("cluster routing: ", name,
                       " acts on one node or connection: send it on the cluster client's ForNode "
                       "(ClusterAsync, ClusterConnection)"));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<absl::string_view>> CommandKeys(const RedisArgv& argv) {
  absl::StatusOr<Keys> keys = Classify(argv);
  if (!keys.ok()) return keys.status();
  return std::move(keys->keys);
}

absl::StatusOr<ClusterRoute> RouteCommand(const RedisArgv& argv) {
  absl::StatusOr<Keys> keys = Classify(argv);
  if (!keys.ok()) return keys.status();
  ClusterRoute route;
  if (keys->rule == Rule::kAnyMaster) {
    route.kind = ClusterRoute::Kind::kAnyMaster;
    return route;
  }
  if (keys->rule == Rule::kAllMasters) {
    route.kind = ClusterRoute::Kind::kAllMasters;
    return route;
  }
  route.slot = KeySlot(keys->keys.front());
  for (absl::string_view key : keys->keys) {
    const int slot = KeySlot(key);
    if (slot != route.slot) {
      return absl::FailedPreconditionError(
          absl::StrCat("CROSSSLOT: ", absl::AsciiStrToUpper(argv[0]), " keys \"",
                       keys->keys.front(), "\" (slot ", route.slot, ") and \"", key, "\" (slot ",
                       slot, ") are in different cluster slots; give them a common {hash tag}"));
    }
  }
  return route;
}

}  // namespace redrive
