#include "daemon/redis/lua_scripts.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <string>

namespace redrive {

const EmbeddedLua& LuaScriptNamed(absl::string_view name) {
  for (const EmbeddedLua& script : EmbeddedLuaScripts()) {
    if (script.name == name) return script;
  }
  spdlog::critical("no Lua script '{}' was embedded (daemon/lua/{}.lua)", std::string(name),
                   std::string(name));
  std::abort();
}

}  // namespace redrive
