// The Lua scripts of daemon/lua/, embedded at build time by
// cmake/EmbedLua.cmake, each with its SHA-1 (the name Redis gives a script,
// which EVALSHA takes) computed by CMake. Each .lua file opens with a comment
// stating its KEYS, ARGV and result, and runs as it is with
// `redis-cli --eval daemon/lua/NAME.lua KEY ... , ARG ...`.
//
// Thread-safe: immutable data.
#ifndef REDRIVE_DAEMON_REDIS_LUA_SCRIPTS_H_
#define REDRIVE_DAEMON_REDIS_LUA_SCRIPTS_H_

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace redrive {

struct EmbeddedLua {
  absl::string_view name;    // the file name without .lua
  absl::string_view source;  // the file's bytes
  absl::string_view sha1;    // lower-case hex SHA-1 of `source`
};

// Every script of daemon/lua/, ordered by name.
absl::Span<const EmbeddedLua> EmbeddedLuaScripts();

// The script daemon/lua/NAME.lua. A name without a file is a build defect:
// it is logged and the process aborts.
const EmbeddedLua& LuaScriptNamed(absl::string_view name);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_REDIS_LUA_SCRIPTS_H_
