// Builds BinaryMessageFormatV1 bytes straight from the layout in
// docs/eggai-compat.md, independently of daemon/envelope.cc, so tests can check
// the encoder against the spec rather than against itself.
#ifndef REDRIVE_TESTS_TESTING_ENVELOPE_BYTES_H_
#define REDRIVE_TESTS_TESTING_ENVELOPE_BYTES_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace redrive::testing {

inline void PutU16(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>((v >> 8) & 0xFF));
  out.push_back(static_cast<char>(v & 0xFF));
}

inline void PutU32(std::string& out, uint32_t v) {
  PutU16(out, v >> 16);
  PutU16(out, v & 0xFFFF);
}

// Header lengths are UTF-8 byte counts.
inline std::string SpecEnvelope(const std::vector<std::pair<std::string, std::string>>& headers,
                                const std::string& body) {
  std::string block;
  PutU16(block, static_cast<uint32_t>(headers.size()));
  for (const auto& [k, v] : headers) {
    PutU16(block, static_cast<uint32_t>(k.size()));
    block += k;
    PutU16(block, static_cast<uint32_t>(v.size()));
    block += v;
  }
  std::string out("\x89\x42\x49\x4E\x0D\x0A\x1A\x0A", 8);
  PutU16(out, 1);
  PutU32(out, 18);
  PutU32(out, static_cast<uint32_t>(18 + block.size()));
  return out + block + body;
}

}  // namespace redrive::testing

#endif  // REDRIVE_TESTS_TESTING_ENVELOPE_BYTES_H_
