#include "daemon/check.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace redrive::check_internal {

CheckFailure::~CheckFailure() {
  std::string text = message_.str();
  if (!text.empty()) text.insert(0, " ");
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (logger != nullptr && logger->should_log(spdlog::level::critical)) {
    logger->critical("CHECK failed: {}:{}: {}{}", file_, line_, condition_, text);
    logger->flush();
  } else {
    std::fprintf(stderr, "CHECK failed: %s:%d: %s%s\n", file_, line_, condition_, text.c_str());
    std::fflush(stderr);
  }
  std::abort();
}

}  // namespace redrive::check_internal
