#include "daemon/python_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace redrive {
namespace {

void AppendU16Escape(uint32_t unit, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->append("\\u");
  for (int shift = 12; shift >= 0; shift -= 4) out->push_back(kHex[(unit >> shift) & 0xf]);
}

// One code point as Python's json.dumps(ensure_ascii=True) prints it inside a
// string (py_encode_basestring_ascii).
void AppendEscapedCodePoint(uint32_t cp, std::string* out) {
  switch (cp) {
    case '"':
      out->append("\\\"");
      return;
    case '\\':
      out->append("\\\\");
      return;
    case '\n':
      out->append("\\n");
      return;
    case '\r':
      out->append("\\r");
      return;
    case '\t':
      out->append("\\t");
      return;
    case '\b':
      out->append("\\b");
      return;
    case '\f':
      out->append("\\f");
      return;
    default:
      break;
  }
  if (cp >= 0x20 && cp <= 0x7e) {
    out->push_back(static_cast<char>(cp));
  } else if (cp <= 0xffff) {
    AppendU16Escape(cp, out);
  } else {
    const uint32_t v = cp - 0x10000;
    AppendU16Escape(0xd800 + (v >> 10), out);
    AppendU16Escape(0xdc00 + (v & 0x3ff), out);
  }
}

// Decodes one UTF-8 sequence at in[*pos] (a lead byte >= 0x80), advancing
// *pos. Strict UTF-8 except that encoded surrogates (ED A0..BF xx) are
// accepted, as Python's "surrogatepass" error handler does for json.loads.
bool DecodeUtf8(absl::string_view in, size_t* pos, uint32_t* cp) {
  const auto byte = [&in](size_t i) { return static_cast<uint8_t>(in[i]); };
  const uint8_t lead = byte(*pos);
  size_t len = 0;
  uint32_t min = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    len = 2;
    min = 0x80;
    *cp = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    len = 3;
    min = 0x800;
    *cp = lead & 0x0f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    len = 4;
    min = 0x10000;
    *cp = lead & 0x07;
  } else {
    return false;
  }
  if (in.size() - *pos < len) return false;
  for (size_t i = 1; i < len; ++i) {
    const uint8_t b = byte(*pos + i);
    if ((b & 0xc0) != 0x80) return false;
    *cp = (*cp << 6) | (b & 0x3f);
  }
  if (*cp < min || *cp > 0x10ffff) return false;
  *pos += len;
  return true;
}

// `utf8` as the content of a Python-printed JSON string (no quotes).
absl::StatusOr<std::string> EscapeUtf8(absl::string_view utf8) {
  std::string out;
  out.reserve(utf8.size() + 2);
  size_t pos = 0;
  while (pos < utf8.size()) {
    const uint8_t b = static_cast<uint8_t>(utf8[pos]);
    if (b < 0x80) {
      AppendEscapedCodePoint(b, &out);
      ++pos;
      continue;
    }
    uint32_t cp = 0;
    if (!DecodeUtf8(utf8, &pos, &cp)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid UTF-8 at byte ", pos));
    }
    AppendEscapedCodePoint(cp, &out);
  }
  return out;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// A recursive-descent reader of the JSON Python's json.loads accepts (C
// scanner, strict=True), building JsonNode trees.
class PythonJsonReader {
 public:
  explicit PythonJsonReader(absl::string_view in) : in_(in) {}

  absl::Status ReadDocument(JsonNode* root) {
    if (in_.substr(0, 3) == "\xef\xbb\xbf") pos_ = 3;  // json.loads(bytes): utf-8-sig
    SkipWhitespace();
    absl::Status s = ReadValue(root, 0);
    if (!s.ok()) return s;
    SkipWhitespace();
    if (pos_ != in_.size()) return Error("extra data");
    return absl::OkStatus();
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("not JSON: ", what, " at byte ", pos_));
  }

  bool AtEnd() const { return pos_ >= in_.size(); }
  char Peek() const { return in_[pos_]; }

  void SkipWhitespace() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' || Peek() == '\r')) {
      ++pos_;
    }
  }

  bool Consume(absl::string_view word) {
    if (in_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  absl::Status ReadValue(JsonNode* node, int depth) {
    if (AtEnd()) return Error("expecting value");
    node->kind = JsonNode::Kind::kScalar;
    switch (Peek()) {
      case '{':
        return ReadObject(node, depth + 1);
      case '[':
        return ReadArray(node, depth + 1);
      case '"': {
        std::string content;
        absl::Status s = ReadString(&content);
        if (!s.ok()) return s;
        node->text = absl::StrCat("\"", content, "\"");
        return absl::OkStatus();
      }
      default:
        break;
    }
    for (absl::string_view literal : {"null", "true", "false", "NaN", "Infinity", "-Infinity"}) {
      if (Consume(literal)) {
        node->text = std::string(literal);
        return absl::OkStatus();
      }
    }
    return ReadNumber(&node->text);
  }

  absl::Status ReadObject(JsonNode* node, int depth) {
    if (depth > kMaxJsonDepth) return Error("nesting too deep");
    node->kind = JsonNode::Kind::kObject;
    ++pos_;  // '{'
    SkipWhitespace();
    if (!AtEnd() && Peek() == '}') {
      ++pos_;
      return absl::OkStatus();
    }
    absl::flat_hash_map<std::string, size_t> index;
    while (true) {
      if (AtEnd() || Peek() != '"') return Error("expecting property name in double quotes");
      std::string key;
      absl::Status s = ReadString(&key);
      if (!s.ok()) return s;
      SkipWhitespace();
      if (AtEnd() || Peek() != ':') return Error("expecting ':' delimiter");
      ++pos_;
      SkipWhitespace();
      JsonNode value;
      s = ReadValue(&value, depth);
      if (!s.ok()) return s;
      // A repeated key keeps its first position and takes the last value.
      const auto [it, inserted] = index.try_emplace(key, node->keys.size());
      if (inserted) {
        node->keys.push_back(std::move(key));
        node->children.push_back(std::move(value));
      } else {
        node->children[it->second] = std::move(value);
      }
      SkipWhitespace();
      if (AtEnd()) return Error("expecting ',' delimiter");
      if (Peek() == '}') {
        ++pos_;
        return absl::OkStatus();
      }
      if (Peek() != ',') return Error("expecting ',' delimiter");
      ++pos_;
      SkipWhitespace();
    }
  }

  absl::Status ReadArray(JsonNode* node, int depth) {
    if (depth > kMaxJsonDepth) return Error("nesting too deep");
    node->kind = JsonNode::Kind::kArray;
    ++pos_;  // '['
    SkipWhitespace();
    if (!AtEnd() && Peek() == ']') {
      ++pos_;
      return absl::OkStatus();
    }
    while (true) {
      JsonNode item;
      absl::Status s = ReadValue(&item, depth);
      if (!s.ok()) return s;
      node->children.push_back(std::move(item));
      SkipWhitespace();
      if (AtEnd()) return Error("expecting ',' delimiter");
      if (Peek() == ']') {
        ++pos_;
        return absl::OkStatus();
      }
      if (Peek() != ',') return Error("expecting ',' delimiter");
      ++pos_;
      SkipWhitespace();
    }
  }

  bool ReadHex4(uint32_t* unit) {
    if (in_.size() - pos_ < 4) return false;
    *unit = 0;
    for (size_t i = 0; i < 4; ++i) {
      const char c = in_[pos_ + i];
      uint32_t v = 0;
      if (c >= '0' && c <= '9') {
        v = static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v = static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v = static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
      *unit = (*unit << 4) | v;
    }
    pos_ += 4;
    return true;
  }

  // Reads a string at '"', appending its Python-printed content (no quotes).
  absl::Status ReadString(std::string* out) {
    ++pos_;  // '"'
    while (true) {
      if (AtEnd()) return Error("unterminated string");
      const uint8_t b = static_cast<uint8_t>(Peek());
      if (b == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (b < 0x20) return Error("invalid control character");
      if (b >= 0x80) {
        uint32_t cp = 0;
        if (!DecodeUtf8(in_, &pos_, &cp)) return Error("invalid UTF-8");
        AppendEscapedCodePoint(cp, out);
        continue;
      }
      ++pos_;
      if (b != '\\') {
        AppendEscapedCodePoint(b, out);
        continue;
      }
      if (AtEnd()) return Error("unterminated string");
      const char e = Peek();
      ++pos_;
      uint32_t cp = 0;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          cp = static_cast<unsigned char>(e);
          break;
        case 'b':
          cp = '\b';
          break;
        case 'f':
          cp = '\f';
          break;
        case 'n':
          cp = '\n';
          break;
        case 'r':
          cp = '\r';
          break;
        case 't':
          cp = '\t';
          break;
        case 'u': {
          if (!ReadHex4(&cp)) return Error("invalid \\uXXXX escape");
          // A high surrogate followed by an escaped low one is one character;
          // anything else leaves it a lone surrogate (as Python does).
          if (cp >= 0xd800 && cp <= 0xdbff && in_.substr(pos_, 2) == "\\u") {
            const size_t mark = pos_;
            pos_ += 2;
            uint32_t low = 0;
            if (!ReadHex4(&low)) return Error("invalid \\uXXXX escape");
            if (low >= 0xdc00 && low <= 0xdfff) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            } else {
              pos_ = mark;
            }
          }
          break;
        }
        default:
          return Error("invalid \\escape");
      }
      AppendEscapedCodePoint(cp, out);
    }
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?
  absl::Status ReadNumber(std::string* text) {
    const size_t start = pos_;
    if (!AtEnd() && Peek() == '-') ++pos_;
    if (AtEnd() || !IsDigit(Peek())) {
      pos_ = start;
      return Error("expecting value");
    }
    if (Peek() == '0') {
      ++pos_;
    } else {
      while (!AtEnd() && IsDigit(Peek())) ++pos_;
    }
    bool is_float = false;
    if (in_.size() - pos_ >= 2 && Peek() == '.' && IsDigit(in_[pos_ + 1])) {
      is_float = true;
      pos_ += 1;
      while (!AtEnd() && IsDigit(Peek())) ++pos_;
    }
    if (!AtEnd() && (Peek() == 'e' || Peek() == 'E')) {
      size_t p = pos_ + 1;
      if (p < in_.size() && (in_[p] == '+' || in_[p] == '-')) ++p;
      if (p < in_.size() && IsDigit(in_[p])) {
        is_float = true;
        pos_ = p;
        while (!AtEnd() && IsDigit(Peek())) ++pos_;
      }
    }
    const absl::string_view lexeme = in_.substr(start, pos_ - start);
    if (is_float) {
      *text = PythonFloat(lexeme);
    } else {
      // Python ints print their exact digits; only "-0" changes.
      *text = lexeme == "-0" ? "0" : std::string(lexeme);
    }
    return absl::OkStatus();
  }

  absl::string_view in_;
  size_t pos_ = 0;
};

void EmitJson(const JsonNode& node, std::string* out) {
  switch (node.kind) {
    case JsonNode::Kind::kScalar:
      out->append(node.text);
      return;
    case JsonNode::Kind::kArray:
      out->push_back('[');
      for (size_t i = 0; i < node.children.size(); ++i) {
        if (i > 0) out->push_back(',');
        EmitJson(node.children[i], out);
      }
      out->push_back(']');
      return;
    case JsonNode::Kind::kObject:
      out->push_back('{');
      for (size_t i = 0; i < node.children.size(); ++i) {
        if (i > 0) out->push_back(',');
        absl::StrAppend(out, "\"", node.keys[i], "\":");
        EmitJson(node.children[i], out);
      }
      out->push_back('}');
      return;
  }
}

JsonNode ScalarNode(std::string text) {
  JsonNode node;
  node.text = std::move(text);
  return node;
}

}  // namespace

absl::StatusOr<std::string> PythonString(absl::string_view utf8) {
  absl::StatusOr<std::string> content = EscapeUtf8(utf8);
  if (!content.ok()) return content.status();
  return absl::StrCat("\"", *content, "\"");
}

std::string PythonFloat(absl::string_view lexeme) {
  const bool negative = lexeme.front() == '-';
  double value = 0;
  const std::from_chars_result r =
      std::from_chars(lexeme.data(), lexeme.data() + lexeme.size(), value);
  if (r.ec == std::errc::result_out_of_range) {
    // from_chars reports both overflow and underflow; Python rounds them to
    // +-inf and +-0.0. Tell them apart by the decimal exponent of the first
    // non-zero digit (there is one, or the value would be in range).
    size_t i = negative ? 1 : 0;
    const size_t int_start = i;
    while (i < lexeme.size() && IsDigit(lexeme[i])) ++i;
    const size_t int_len = i - int_start;
    int64_t magnitude = 0;
    bool found = false;
    for (size_t k = 0; k < int_len && !found; ++k) {
      if (lexeme[int_start + k] != '0') {
        magnitude = static_cast<int64_t>(int_len - 1 - k);
        found = true;
      }
    }
    if (i < lexeme.size() && lexeme[i] == '.') {
      ++i;
      for (int64_t k = 1; i < lexeme.size() && IsDigit(lexeme[i]); ++i, ++k) {
        if (!found && lexeme[i] != '0') {
          magnitude = -k;
          found = true;
        }
      }
    }
    int64_t exponent = 0;
    if (i < lexeme.size() && (lexeme[i] == 'e' || lexeme[i] == 'E')) {
      ++i;
      bool exponent_negative = false;
      if (i < lexeme.size() && (lexeme[i] == '+' || lexeme[i] == '-')) {
        exponent_negative = lexeme[i++] == '-';
      }
      for (; i < lexeme.size() && IsDigit(lexeme[i]); ++i) {
        if (exponent < 100000000) exponent = exponent * 10 + (lexeme[i] - '0');
      }
      if (exponent_negative) exponent = -exponent;
    }
    if (magnitude + exponent >= 0) return negative ? "-Infinity" : "Infinity";
    return negative ? "-0.0" : "0.0";
  }
  if (std::isinf(value)) return negative ? "-Infinity" : "Infinity";

  // Shortest round-trip digits, as Python's repr (David Gay's mode 0).
  char buf[64];
  const std::to_chars_result w =
      std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  const absl::string_view sci(buf, static_cast<size_t>(w.ptr - buf));  // [-]d[.ddd]e±XX
  size_t i = sci.front() == '-' ? 1 : 0;
  std::string digits;
  for (; i < sci.size() && sci[i] != 'e'; ++i) {
    if (sci[i] != '.') digits.push_back(sci[i]);
  }
  int64_t exponent = 0;
  bool exponent_negative = false;
  for (++i; i < sci.size(); ++i) {
    if (sci[i] == '-') {
      exponent_negative = true;
    } else if (IsDigit(sci[i])) {
      exponent = exponent * 10 + (sci[i] - '0');
    }
  }
  if (exponent_negative) exponent = -exponent;

  // Python's float_repr_style "short" ('r' format): the decimal point is
  // `decpt` digits in; exponent notation when decpt <= -4 or decpt > 16.
  const int64_t decpt = exponent + 1;
  const int64_t n = static_cast<int64_t>(digits.size());
  std::string out = negative ? "-" : "";
  if (decpt <= -4 || decpt > 16) {
    out.push_back(digits[0]);
    if (n > 1) absl::StrAppend(&out, ".", absl::string_view(digits).substr(1));
    const int64_t e = decpt - 1;
    const int64_t abs_e = e < 0 ? -e : e;
    absl::StrAppend(&out, "e", e < 0 ? "-" : "+", abs_e < 10 ? "0" : "", abs_e);
  } else if (decpt <= 0) {
    absl::StrAppend(&out, "0.", std::string(static_cast<size_t>(-decpt), '0'), digits);
  } else if (decpt >= n) {
    absl::StrAppend(&out, digits, std::string(static_cast<size_t>(decpt - n), '0'), ".0");
  } else {
    const size_t split = static_cast<size_t>(decpt);
    absl::StrAppend(&out, absl::string_view(digits).substr(0, split), ".",
                    absl::string_view(digits).substr(split));
  }
  return out;
}

std::string EmitPythonJson(const JsonNode& node) {
  std::string out;
  EmitJson(node, &out);
  return out;
}

absl::StatusOr<std::string> PythonCompactJson(absl::string_view text) {
  JsonNode root;
  absl::Status s = PythonJsonReader(text).ReadDocument(&root);
  if (!s.ok()) return s;
  return EmitPythonJson(root);
}

std::optional<JsonNode> ParsePythonJsonObject(absl::string_view text) {
  JsonNode root;
  if (!PythonJsonReader(text).ReadDocument(&root).ok()) return std::nullopt;
  if (root.kind != JsonNode::Kind::kObject) return std::nullopt;
  return root;
}

const JsonNode* FindMember(const JsonNode& object, absl::string_view key) {
  for (size_t i = 0; i < object.keys.size(); ++i) {
    if (object.keys[i] == key) return &object.children[i];
  }
  return nullptr;
}

void SetMember(JsonNode* object, absl::string_view key, std::string text) {
  for (size_t i = 0; i < object->keys.size(); ++i) {
    if (object->keys[i] == key) {
      object->children[i] = ScalarNode(std::move(text));
      return;
    }
  }
  object->keys.emplace_back(key);
  object->children.push_back(ScalarNode(std::move(text)));
}

void SetDefaultMember(JsonNode* object, absl::string_view key, std::string text) {
  if (FindMember(*object, key) == nullptr) SetMember(object, key, std::move(text));
}

bool RemoveMembers(JsonNode* object, absl::Span<const absl::string_view> keys) {
  bool removed = false;
  for (size_t i = object->keys.size(); i-- > 0;) {
    if (std::find(keys.begin(), keys.end(), object->keys[i]) != keys.end()) {
      object->keys.erase(object->keys.begin() + static_cast<std::ptrdiff_t>(i));
      object->children.erase(object->children.begin() + static_cast<std::ptrdiff_t>(i));
      removed = true;
    }
  }
  return removed;
}

}  // namespace redrive
