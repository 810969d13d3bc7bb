#include "daemon/redis/url.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace redrive {
namespace {

absl::StatusOr<std::string> PercentDecode(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) {
      return absl::InvalidArgumentError("redis url: truncated %-escape");
    }
    int value = 0;
    for (size_t k = 1; k <= 2; ++k) {
      const char c = in[i + k];
      value <<= 4;
      if (c >= '0' && c <= '9') {
        value |= c - '0';
      } else if (c >= 'a' && c <= 'f') {
        value |= c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        value |= c - 'A' + 10;
      } else {
        return absl::InvalidArgumentError("redis url: bad %-escape");
      }
    }
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

// Splits "user:password@rest" into credentials and rest.
absl::Status TakeCredentials(absl::string_view& rest, RedisAddress& addr) {
  const size_t at = rest.rfind('@');
  if (at == absl::string_view::npos) return absl::OkStatus();
  absl::string_view creds = rest.substr(0, at);
  rest.remove_prefix(at + 1);
  const size_t colon = creds.find(':');
  absl::string_view user = creds;
  absl::string_view password;
  if (colon != absl::string_view::npos) {
    user = creds.substr(0, colon);
    password = creds.substr(colon + 1);
  }
  absl::StatusOr<std::string> u = PercentDecode(user);
  if (!u.ok()) return u.status();
  absl::StatusOr<std::string> p = PercentDecode(password);
  if (!p.ok()) return p.status();
  addr.user = *std::move(u);
  addr.password = *std::move(p);
  if (addr.password.empty() && !addr.user.empty() && colon == absl::string_view::npos) {
    // redis://secret@host is the common "password only" spelling.
    addr.password = std::move(addr.user);
    addr.user.clear();
  }
  return absl::OkStatus();
}

absl::Status ParseDb(absl::string_view text, RedisAddress& addr) {
  if (text.empty()) return absl::OkStatus();
  int db = 0;
  if (!absl::SimpleAtoi(text, &db) || db < 0 || db > 15999 ||
      text.find_first_not_of("0123456789") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis url: database must be 0..15999, got '", text, "'"));
  }
  addr.db = db;
  return absl::OkStatus();
}

// "host[:port]" or "[v6addr][:port]"; `default_port` when no port is given.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view hostport, int default_port) {
  HostPort out;
  out.port = default_port;
  absl::string_view port_text;
  bool has_port = false;
  if (absl::ConsumePrefix(&hostport, "[")) {
    const size_t close = hostport.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("redis url: unterminated [IPv6] host");
    }
    out.host = std::string(hostport.substr(0, close));
    absl::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (!absl::ConsumePrefix(&after, ":")) {
        return absl::InvalidArgumentError("redis url: junk after [IPv6] host");
      }
      port_text = after;
      has_port = true;
    }
  } else {
    const size_t colon = hostport.rfind(':');
    out.host = std::string(hostport.substr(0, colon));
    if (colon != absl::string_view::npos) {
      port_text = hostport.substr(colon + 1);
      has_port = true;
    }
  }
  if (out.host.empty()) {
    return absl::InvalidArgumentError("redis url: host is required");
  }
  if (has_port) {
    int port = 0;
    if (!absl::SimpleAtoi(port_text, &port) || port < 1 || port > 65535 ||
        port_text.find_first_not_of("0123456789") != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis url: port must be 1..65535, got '", port_text, "'"));
    }
    out.port = port;
  }
  return out;
}

// "h1[:p1],h2[:p2],...": `what` names an entry in messages.
absl::StatusOr<std::vector<HostPort>> ParseHostList(absl::string_view hosts, int default_port,
                                                    absl::string_view what) {
  std::vector<HostPort> out;
  for (absl::string_view one : absl::StrSplit(hosts, ',')) {
    if (one.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis url: empty ", what, " address in '", hosts, "'"));
    }
    absl::StatusOr<HostPort> hp = ParseHostPort(one, default_port);
    if (!hp.ok()) return hp.status();
    out.push_back(*std::move(hp));
  }
  return out;
}

// "?sentinel_user=U&sentinel_password=P" (values percent-decoded).
absl::Status ParseSentinelQuery(absl::string_view query, SentinelAddress& sentinel) {
  bool seen_user = false;
  bool seen_password = false;
  for (absl::string_view param : absl::StrSplit(query, '&')) {
    const size_t eq = param.find('=');
    const absl::string_view key = param.substr(0, eq);
    if (key != "sentinel_user" && key != "sentinel_password") {
      return absl::InvalidArgumentError(
          absl::StrCat("redis url: unknown query parameter '", key,
                       "' (redis-sentinel:// takes sentinel_user and sentinel_password)"));
    }
    bool& seen = key == "sentinel_user" ? seen_user : seen_password;
    if (seen) {
      return absl::InvalidArgumentError(absl::StrCat("redis url: ", key, " is given twice"));
    }
    seen = true;
    if (eq == absl::string_view::npos || eq + 1 == param.size()) {
      return absl::InvalidArgumentError(absl::StrCat("redis url: ", key, " needs a value"));
    }
    absl::StatusOr<std::string> value = PercentDecode(param.substr(eq + 1));
    if (!value.ok()) return value.status();
    (key == "sentinel_user" ? sentinel.user : sentinel.password) = *std::move(value);
  }
  if (seen_user && !seen_password) {
    return absl::InvalidArgumentError("redis url: sentinel_user needs sentinel_password");
  }
  return absl::OkStatus();
}

// After "redis-sentinel://": [creds@]h1[:p1][,h2[:p2]...]/master[/db][?query]
absl::StatusOr<RedisAddress> ParseSentinel(absl::string_view rest) {
  RedisAddress addr;
  const size_t q = rest.find('?');
  if (q != absl::string_view::npos) {
    if (absl::Status s = ParseSentinelQuery(rest.substr(q + 1), addr.sentinel); !s.ok()) return s;
    rest = rest.substr(0, q);
  }
  if (absl::Status s = TakeCredentials(rest, addr); !s.ok()) return s;
  const size_t slash = rest.find('/');
  const absl::string_view hosts = rest.substr(0, slash);
  if (hosts.empty()) {
    return absl::InvalidArgumentError(
        "redis url: redis-sentinel:// needs at least one sentinel host[:port]");
  }
  absl::StatusOr<std::vector<HostPort>> sentinels = ParseHostList(hosts, 26379, "sentinel");
  if (!sentinels.ok()) return sentinels.status();
  addr.sentinel.sentinels = *std::move(sentinels);
  absl::string_view path = slash == absl::string_view::npos ? "" : rest.substr(slash + 1);
  const size_t db_slash = path.find('/');
  absl::StatusOr<std::string> master = PercentDecode(path.substr(0, db_slash));
  if (!master.ok()) return master.status();
  if (master->empty()) {
    return absl::InvalidArgumentError(
        "redis url: redis-sentinel:// needs the master name Sentinel monitors, e.g. "
        "redis-sentinel://127.0.0.1:26379/mymaster");
  }
  for (const char c : *master) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          "redis url: master name must be printable ASCII without spaces");
    }
  }
  addr.sentinel.master_name = *std::move(master);
  if (db_slash != absl::string_view::npos) {
    if (absl::Status s = ParseDb(path.substr(db_slash + 1), addr); !s.ok()) return s;
  }
  return addr;
}

// After "redis-cluster://" or "redis://" with several hosts:
// [creds@]h1[:p1][,h2[:p2]...][/0]. `scheme` names the form in messages.
absl::StatusOr<RedisAddress> ParseCluster(absl::string_view rest, absl::string_view scheme) {
  RedisAddress addr;
  if (absl::Status s = TakeCredentials(rest, addr); !s.ok()) return s;
  const size_t slash = rest.find('/');
  const absl::string_view hosts = rest.substr(0, slash);
  if (slash != absl::string_view::npos) {
    if (absl::Status s = ParseDb(rest.substr(slash + 1), addr); !s.ok()) return s;
    if (addr.db != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "redis url: ", scheme, " is a Redis Cluster, which has only database 0, got /", addr.db));
    }
  }
  if (hosts.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis url: ", scheme, " needs at least one cluster node host[:port]"));
  }
  absl::StatusOr<std::vector<HostPort>> seeds = ParseHostList(hosts, 6379, "cluster node");
  if (!seeds.ok()) return seeds.status();
  for (auto it = seeds->begin(); it != seeds->end(); ++it) {
    if (std::find(seeds->begin(), it, *it) != it) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis url: cluster node ", it->ToString(), " is listed twice"));
    }
  }
  addr.cluster_seeds = *std::move(seeds);
  addr.host = addr.cluster_seeds.front().host;
  addr.port = addr.cluster_seeds.front().port;
  return addr;
}

absl::StatusOr<RedisAddress> ParseUnix(absl::string_view rest) {
  RedisAddress addr;
  if (absl::Status s = TakeCredentials(rest, addr); !s.ok()) return s;
  const size_t q = rest.find('?');
  absl::string_view path = rest.substr(0, q);
  if (q != absl::string_view::npos) {
    absl::string_view query = rest.substr(q + 1);
    if (!absl::ConsumePrefix(&query, "db=")) {
      return absl::InvalidArgumentError("redis url: unix query must be ?db=N");
    }
    if (absl::Status s = ParseDb(query, addr); !s.ok()) return s;
  }
  if (path.empty() || path.front() != '/') {
    return absl::InvalidArgumentError("redis url: unix socket path must be absolute");
  }
  addr.unix_path = std::string(path);
  return addr;
}

}  // namespace

std::string HostPort::ToString() const {
  const bool v6 = host.find(':') != std::string::npos;
  return absl::StrCat(v6 ? "[" : "", host, v6 ? "]" : "", ":", port);
}

std::string RedisAddress::Redacted() const {
  if (is_unix()) return absl::StrCat("unix://", unix_path, "?db=", db);
  if (is_sentinel()) {
    std::string out = "redis-sentinel://";
    for (size_t i = 0; i < sentinel.sentinels.size(); ++i) {
      absl::StrAppend(&out, i == 0 ? "" : ",", sentinel.sentinels[i].ToString());
    }
    absl::StrAppend(&out, "/", sentinel.master_name, "/", db);
    return out;
  }
  if (is_cluster()) {
    std::string out = "redis-cluster://";
    for (size_t i = 0; i < cluster_seeds.size(); ++i) {
      absl::StrAppend(&out, i == 0 ? "" : ",", cluster_seeds[i].ToString());
    }
    return out;
  }
  return absl::StrCat("redis://", HostPort{host, port}.ToString(), "/", db);
}

absl::StatusOr<RedisAddress> ParseRedisUrl(absl::string_view url) {
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "unix://")) return ParseUnix(rest);
  if (absl::ConsumePrefix(&rest, "unix:")) return ParseUnix(rest);
  if (absl::StartsWithIgnoreCase(rest, "rediss://")) {
    return absl::InvalidArgumentError(
        "redis url: rediss:// (Redis over TLS) is not supported: hiredis 0.14, the version "
        "Debian 12 ships, has no TLS. Run a TLS tunnel beside redrived (stunnel: "
        "deploy/stunnel/redis-tls-client.conf, README \"TLS\") and point --redis-url at its "
        "plaintext local port, e.g. redis://127.0.0.1:6380/0");
  }
  if (absl::ConsumePrefix(&rest, "redis-sentinel://")) return ParseSentinel(rest);
  if (absl::ConsumePrefix(&rest, "redis-cluster://")) return ParseCluster(rest, "redis-cluster://");
  if (!absl::ConsumePrefix(&rest, "redis://")) {
    return absl::InvalidArgumentError(
        "redis url: expected redis://host:port/db, unix:///path, "
        "redis-sentinel://host:port[,host:port]/master, "
        "redis-cluster://host:port[,host:port] or embedded");
  }
  // Several hosts: Redis Cluster seeds (a credential may contain a comma).
  if (rest.substr(rest.rfind('@') == absl::string_view::npos ? 0 : rest.rfind('@') + 1).find(',') !=
      absl::string_view::npos) {
    return ParseCluster(rest, "redis:// with several hosts");
  }
  RedisAddress addr;
  if (absl::Status s = TakeCredentials(rest, addr); !s.ok()) return s;
  const size_t slash = rest.find('/');
  absl::string_view hostport = rest.substr(0, slash);
  if (slash != absl::string_view::npos) {
    if (absl::Status s = ParseDb(rest.substr(slash + 1), addr); !s.ok()) {
      return s;
    }
  }
  absl::StatusOr<HostPort> hp = ParseHostPort(hostport, 6379);
  if (!hp.ok()) return hp.status();
  addr.host = std::move(hp->host);
  addr.port = hp->port;
  return addr;
}

}  // namespace redrive
