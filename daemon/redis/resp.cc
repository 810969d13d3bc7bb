#include "daemon/redis/resp.h"

#include <cstring>

namespace redrive {
namespace {

size_t Digits(size_t n) {
  size_t d = 1;
  for (; n >= 10; n /= 10) ++d;
  return d;
}

// Writes `prefix`, n in decimal and "\r\n" at `out`; returns the end.
char* Header(char* out, char prefix, size_t n) {
  *out++ = prefix;
  const size_t digits = Digits(n);
  for (size_t i = digits; i > 0; --i) {
    out[i - 1] = static_cast<char>('0' + n % 10);
    n /= 10;
  }
  out += digits;
  *out++ = '\r';
  *out++ = '\n';
  return out;
}

}  // namespace

std::string EncodeCommand(absl::Span<const absl::string_view> argv) {
  size_t size = 1 + Digits(argv.size()) + 2;
  for (absl::string_view a : argv) size += 1 + Digits(a.size()) + 2 + a.size() + 2;
  std::string out(size, '\0');
  char* p = Header(out.data(), '*', argv.size());
  for (absl::string_view a : argv) {
    p = Header(p, '$', a.size());
    if (!a.empty()) std::memcpy(p, a.data(), a.size());
    p += a.size();
    *p++ = '\r';
    *p++ = '\n';
  }
  return out;
}

}  // namespace redrive
