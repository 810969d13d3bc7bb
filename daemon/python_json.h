// Python-compatible JSON: a reader of the JSON Python's json.loads accepts
// and an emitter that prints it as json.dumps(..., separators=(",", ":"))
// does, byte for byte (the EggAI retry metadata rewrites bodies with it, see
// retry_metadata.h). The parse tree's leaves already hold the text Python
// would print for them, so an unchanged value is re-emitted exactly.
//
// All functions are pure, thread-safe and never throw.
#ifndef REDRIVE_DAEMON_PYTHON_JSON_H_
#define REDRIVE_DAEMON_PYTHON_JSON_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace redrive {

// Nesting deeper than this (arrays/objects) is treated as "not JSON", so a
// hostile body cannot exhaust the stack (about 1.2 KiB of stack per level at
// -O2). Python itself fails at ~1000 levels; such a body is then a legal
// payload whose metadata travels in headers.
inline constexpr int kMaxJsonDepth = 256;

// A JSON value as Python would print it.
struct JsonNode {
  enum class Kind { kScalar, kArray, kObject };
  Kind kind = Kind::kScalar;
  // kScalar: the printed text ("\"...\"" for a string, a number, a literal).
  std::string text;
  // kObject: member keys, printed WITHOUT quotes. Python's escaping is
  // injective, so equal printed keys are equal Python strings.
  std::vector<std::string> keys;
  // kArray items, or kObject values (parallel to `keys`).
  std::vector<JsonNode> children;
};

// What Python's json.dumps(json.loads(text), separators=(",", ":")) returns,
// byte for byte (stdlib json, ensure_ascii=True, Python 3.11):
//   - input: UTF-8 bytes (one leading UTF-8 BOM skipped, UTF-8-encoded
//     surrogates accepted, as json.loads(bytes) does), JSON with NaN,
//     Infinity, -Infinity; raw control characters in strings are errors;
//     nesting deeper than kMaxJsonDepth is an error (UTF-16/32 input, which
//     json.loads(bytes) also sniffs, is not supported: an error here);
//   - strings: '"' '\\' \n \r \t \b \f short escapes; every other character
//     outside 0x20..0x7e as \uXXXX in lower-case hex, characters above U+FFFF
//     as a surrogate pair, lone surrogates as themselves;
//   - objects: a repeated key keeps its first position and its last value;
//   - integers keep their digits exactly (any size); "-0" becomes "0";
//   - other numbers print as Python's repr(float(lexeme)): shortest
//     round-trip digits, "1.0", "1e+100", "1e-05", "100000.0", overflow
//     "Infinity"/"-Infinity", underflow "0.0"/"-0.0".
// nlohmann::json is not used for this: it cannot keep integer lexemes beyond
// 64 bits, rejects lone surrogates and NaN, and formats floats differently.
// InvalidArgument (with the position) when `text` is not such JSON.
absl::StatusOr<std::string> PythonCompactJson(absl::string_view text);

// The JSON object `text` as a tree, or nullopt when json.loads would not
// give a dict for it.
std::optional<JsonNode> ParsePythonJsonObject(absl::string_view text);

// `node` printed compactly, as Python prints it.
std::string EmitPythonJson(const JsonNode& node);

// The JSON string literal (with quotes) Python prints for `utf8`
// (ensure_ascii=True); InvalidArgument when `utf8` is not UTF-8.
absl::StatusOr<std::string> PythonString(absl::string_view utf8);

// repr(float(lexeme)) for a JSON number lexeme with a fraction or exponent.
std::string PythonFloat(absl::string_view lexeme);

// Object members by printed key (keys that need no escaping are their own
// printed form). `object` must be a kObject node.
const JsonNode* FindMember(const JsonNode& object, absl::string_view key);
// dict[key] = value, `text` being the value's printed form.
void SetMember(JsonNode* object, absl::string_view key, std::string text);
// dict.setdefault(key, value)
void SetDefaultMember(JsonNode* object, absl::string_view key, std::string text);
// Removes the top-level `keys`; false when none was there.
bool RemoveMembers(JsonNode* object, absl::Span<const absl::string_view> keys);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_PYTHON_JSON_H_
