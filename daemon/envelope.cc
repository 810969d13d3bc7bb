#include "daemon/envelope.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace redrive {
namespace {

constexpr absl::string_view kMagic("\x89\x42\x49\x4e\x0d\x0a\x1a\x0a", 8);
constexpr uint16_t kVersion = 1;
// magic + version + headers_start + data_start.
constexpr size_t kFixedHeaderSize = 18;
constexpr size_t kMaxU16 = std::numeric_limits<uint16_t>::max();

uint16_t ReadU16(absl::string_view s, size_t pos) {
  return static_cast<uint16_t>(static_cast<uint8_t>(s[pos]) << 8 |
                               static_cast<uint8_t>(s[pos + 1]));
}

uint32_t ReadU32(absl::string_view s, size_t pos) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<uint8_t>(s[pos + i]);
  return v;
}

void AppendU16(size_t v, std::string* out) {
  out->push_back(static_cast<char>(v >> 8 & 0xff));
  out->push_back(static_cast<char>(v & 0xff));
}

void AppendU32(size_t v, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>(v >> shift & 0xff));
  }
}

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 if it is
// ill-formed or truncated. Same acceptance as Python's strict "utf-8" codec:
// no overlong forms, no surrogates, nothing above U+10FFFF.
size_t Utf8SequenceLength(absl::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  const auto cont = [&](size_t k, uint8_t lo = 0x80, uint8_t hi = 0xbf) {
    return i + k < s.size() && b(k) >= lo && b(k) <= hi;
  };
  const uint8_t lead = b(0);
  if (lead < 0x80) return 1;
  if (lead < 0xc2) return 0;
  if (lead < 0xe0) return cont(1) ? 2 : 0;
  if (lead < 0xf0) {
    const uint8_t lo = lead == 0xe0 ? 0xa0 : 0x80;
    const uint8_t hi = lead == 0xed ? 0x9f : 0xbf;
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (lead < 0xf5) {
    const uint8_t lo = lead == 0xf0 ? 0x90 : 0x80;
    const uint8_t hi = lead == 0xf4 ? 0x8f : 0xbf;
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII fast path, 8 bytes at a time.
    if (s.size() - i >= 8) {
      uint64_t word;
      std::memcpy(&word, s.data() + i, sizeof(word));
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

enum class LengthUnit { kBytes, kChars };

// Reads the header block [pos, block.size()) where block ends at data_start,
// with lengths in `unit`, appending to `headers`. Fails unless exactly `count`
// headers of valid UTF-8 fill the block.
absl::Status ReadHeaderBlock(absl::string_view block, size_t pos, uint16_t count, LengthUnit unit,
                             HeaderList* headers) {
  const size_t data_start = block.size();
  // Every header takes at least 4 bytes: bound the reservation by the block
  // so a forged count cannot make us allocate.
  headers->reserve(std::min<size_t>(count, (data_start - pos) / 4));
  absl::string_view strings[2];
  for (size_t index = 0; index < count; ++index) {
    for (int part = 0; part < 2; ++part) {
      const char* what = part == 0 ? "key" : "value";
      if (data_start - pos < 2) {
        return absl::DataLossError(absl::StrCat("header ", index, " ", what,
                                                " length field runs past "
                                                "data_start ",
                                                data_start));
      }
      const size_t declared = ReadU16(block, pos);
      pos += 2;
      size_t end;
      if (unit == LengthUnit::kBytes) {
        if (data_start - pos < declared) {
          return absl::DataLossError(absl::StrCat("header ", index, " ", what, " length ", declared,
                                                  " runs past data_start ", data_start));
        }
        end = pos + declared;
        if (!IsValidUtf8(block.substr(pos, declared))) {
          return absl::DataLossError(
              absl::StrCat("header ", index, " ", what, " is not valid UTF-8"));
        }
      } else {
        end = pos;
        for (size_t chars = 0; chars < declared; ++chars) {
          if (end == data_start) {
            return absl::DataLossError(absl::StrCat("header ", index, " ", what, " of ", declared,
                                                    " characters runs past data_start ",
                                                    data_start));
          }
          const size_t n = Utf8SequenceLength(block, end);
          if (n == 0) {
            return absl::DataLossError(
                absl::StrCat("header ", index, " ", what, " is not valid UTF-8"));
          }
          end += n;
        }
      }
      strings[part] = block.substr(pos, end - pos);
      pos = end;
    }
    headers->emplace_back(strings[0], strings[1]);
  }
  if (pos != data_start) {
    return absl::DataLossError(
        absl::StrCat("header block ends at ", pos, ", not at data_start ", data_start));
  }
  return absl::OkStatus();
}

// Streaming reader of a candidate legacy envelope. SAX rather than a DOM: it
// stops at the first member that rules the value out (so a large plain-JSON
// payload costs almost nothing on the read path), runs in linear time (an
// ordered DOM looks keys up linearly) and keeps header order.
class LegacyEnvelopeReader final : public nlohmann::json_sax<nlohmann::json> {
 public:
  // nullptr and *out filled if `value` is a legacy envelope, else why not.
  static const char* Read(absl::string_view value, DecodedEntry* out) {
    // Only an object can be an envelope: skip the parser for everything else.
    const size_t first = value.find_first_not_of(" \t\r\n");
    if (first == absl::string_view::npos || value[first] != '{') {
      return kNotObject;
    }
    LegacyEnvelopeReader reader;
    try {
      if (!nlohmann::json::sax_parse(value.data(), value.data() + value.size(), &reader)) {
        return reader.why_ != nullptr ? reader.why_ : kInvalid;
      }
    } catch (const nlohmann::json::exception&) {
      return kInvalid;  // Not expected: errors go through parse_error().
    }
    if (!reader.has_data_) return "no member \"data\"";
    out->format = EntryFormat::kLegacyJson;
    out->body = std::move(reader.data_);
    out->headers = std::move(reader.headers_);
    return nullptr;
  }

  bool null() override { return Scalar("null"); }
  bool boolean(bool v) override { return Scalar(v ? "true" : "false"); }
  bool number_integer(number_integer_t v) override { return Scalar(absl::StrCat(v)); }
  bool number_unsigned(number_unsigned_t v) override { return Scalar(absl::StrCat(v)); }
  bool number_float(number_float_t, const string_t& text) override {
    return Scalar(text);  // As written: no reformatting of the double.
  }
  bool string(string_t& v) override {
    if (!frames_.empty()) return AppendValue(Quote(v));
    switch (level_) {
      case Level::kTop:
        if (member_ != Member::kData) return Scalar("");  // Reports the error.
        data_ = std::move(v);
        has_data_ = true;
        return true;
      case Level::kHeaders:
        return SetHeader(std::move(v));
      default:
        return Fail(kNotObject);
    }
  }
  bool binary(binary_t&) override { return Fail(kInvalid); }  // Not in JSON.
  bool start_object(std::size_t) override {
    if (!frames_.empty() || level_ == Level::kHeaders) {
      if (!AppendValue("{")) return false;
      frames_.push_back({/*object=*/true, /*first=*/true});
      return true;
    }
    switch (level_) {
      case Level::kBefore:
        level_ = Level::kTop;
        return true;
      case Level::kTop:
        if (member_ != Member::kHeaders) return Scalar("");
        headers_.clear();  // A repeated "headers" replaces the earlier one.
        index_.clear();
        level_ = Level::kHeaders;
        return true;
      default:
        return Fail(kInvalid);
    }
  }
  bool key(string_t& k) override {
    if (!frames_.empty()) {
      Frame& frame = frames_.back();
      if (!frame.first) capture_ += ',';
      frame.first = false;
      capture_ += Quote(k);
      capture_ += ':';
      return true;
    }
    if (level_ == Level::kHeaders) {
      key_ = std::move(k);
      return true;
    }
    if (k == "data") {
      member_ = Member::kData;
    } else if (k == "headers") {
      member_ = Member::kHeaders;
    } else {
      return Fail("has members other than \"data\" and \"headers\"");
    }
    return true;
  }
  bool end_object() override {
    if (!frames_.empty()) return CloseCapture('}');
    level_ = level_ == Level::kHeaders ? Level::kTop : Level::kDone;
    return true;
  }
  bool start_array(std::size_t) override {
    if (frames_.empty() && level_ != Level::kHeaders) return Scalar("");
    if (!AppendValue("[")) return false;
    frames_.push_back({/*object=*/false, /*first=*/true});
    return true;
  }
  bool end_array() override { return CloseCapture(']'); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::json::exception&) override {
    return Fail(kInvalid);
  }

 private:
  static constexpr const char* kNotObject = "not a JSON object";
  static constexpr const char* kInvalid = "not valid JSON";

  enum class Level { kBefore, kTop, kHeaders, kDone };
  enum class Member { kNone, kData, kHeaders };
  // An open array/object inside a non-string header value being captured.
  struct Frame {
    bool object;
    bool first;
  };

  static std::string Quote(const std::string& s) {
    return nlohmann::json(s).dump();  // s is valid UTF-8: the lexer checked.
  }

  bool Fail(const char* why) {
    why_ = why;
    return false;
  }

  // A non-string scalar, or (text "") any value where it is not allowed.
  bool Scalar(absl::string_view text) {
    if (!frames_.empty()) return AppendValue(text);
    switch (level_) {
      case Level::kTop:
        return Fail(member_ == Member::kData ? "member \"data\" is not a string"
                                             : "member \"headers\" is not an object");
      case Level::kHeaders:
        return SetHeader(std::string(text));
      default:
        return Fail(kNotObject);
    }
  }

  // Appends a value to the capture, starting one for a header if needed.
  bool AppendValue(absl::string_view text) {
    if (frames_.empty()) {
      capture_.clear();
    } else if (!frames_.back().object) {
      if (!frames_.back().first) capture_ += ',';
      frames_.back().first = false;
    }
    capture_.append(text.data(), text.size());
    return true;
  }

  bool CloseCapture(char close) {
    if (frames_.empty()) return Fail(kInvalid);
    capture_ += close;
    frames_.pop_back();
    if (frames_.empty()) return SetHeader(std::move(capture_));
    return true;
  }

  // Python dict semantics for a repeated key: first position, last value.
  bool SetHeader(std::string value) {
    const auto [it, inserted] = index_.emplace(key_, headers_.size());
    if (inserted) {
      headers_.emplace_back(std::move(key_), std::move(value));
    } else {
      headers_[it->second].second = std::move(value);
    }
    return true;
  }

  Level level_ = Level::kBefore;
  Member member_ = Member::kNone;
  const char* why_ = nullptr;
  bool has_data_ = false;
  std::string data_;
  HeaderList headers_;
  std::unordered_map<std::string, size_t> index_;  // header key -> position
  std::string key_;                                // current header key
  std::vector<Frame> frames_;
  std::string capture_;
};

}  // namespace

bool HasBinaryV1Magic(absl::string_view value) { return value.substr(0, kMagic.size()) == kMagic; }

absl::StatusOr<DecodedEntry> DecodeBinaryV1(absl::string_view value) {
  if (!HasBinaryV1Magic(value)) {
    return absl::InvalidArgumentError("not BinaryMessageFormatV1: magic bytes absent");
  }
  const size_t size = value.size();
  if (size >= kMagic.size() + 2) {
    const uint16_t version = ReadU16(value, kMagic.size());
    if (version != kVersion) {
      return absl::UnimplementedError(
          absl::StrCat("BinaryMessageFormatV1 version ", version, " is not supported"));
    }
  }
  if (size < kFixedHeaderSize) {
    return absl::DataLossError(absl::StrCat("value is ", size, " bytes, shorter than the ",
                                            kFixedHeaderSize, "-byte fixed header"));
  }
  const size_t headers_start = ReadU32(value, 10);
  const size_t data_start = ReadU32(value, 14);
  if (headers_start < kFixedHeaderSize) {
    return absl::DataLossError(absl::StrCat("headers_start ", headers_start, " points into the ",
                                            kFixedHeaderSize, "-byte fixed header"));
  }
  if (data_start > size) {
    return absl::DataLossError(
        absl::StrCat("data_start ", data_start, " is past the end of the ", size, "-byte value"));
  }
  if (headers_start > data_start || data_start - headers_start < 2) {
    return absl::DataLossError(absl::StrCat("header count at headers_start ", headers_start,
                                            " runs past data_start ", data_start));
  }
  const absl::string_view block = value.substr(0, data_start);
  const uint16_t count = ReadU16(value, headers_start);

  DecodedEntry entry;
  entry.format = EntryFormat::kBinaryV1;
  absl::Status by_bytes =
      ReadHeaderBlock(block, headers_start + 2, count, LengthUnit::kBytes, &entry.headers);
  if (!by_bytes.ok()) {
    entry.headers.clear();
    absl::Status by_chars =
        ReadHeaderBlock(block, headers_start + 2, count, LengthUnit::kChars, &entry.headers);
    if (!by_chars.ok()) {
      if (by_chars.message() == by_bytes.message()) return by_bytes;
      return absl::DataLossError(
          absl::StrCat(by_bytes.message(), "; read as character counts: ", by_chars.message()));
    }
    entry.recovered_char_length_headers = true;
  }
  {
    const absl::string_view body = value.substr(data_start);
    entry.body.assign(body.data(), body.size());
  }
  return entry;
}

absl::StatusOr<std::string> EncodeBinaryV1(const HeaderList& headers, absl::string_view body) {
  if (headers.size() > kMaxU16) {
    return absl::InvalidArgumentError(absl::StrCat(
        headers.size(), " headers exceed the u16 header count (", kMaxU16, " at most)"));
  }
  size_t block_size = 2;
  for (size_t index = 0; index < headers.size(); ++index) {
    const auto& [key, value] = headers[index];
    for (const std::string* s : {&key, &value}) {
      const char* what = s == &key ? "key" : "value";
      if (s->size() > kMaxU16) {
        return absl::InvalidArgumentError(
            absl::StrCat("header ", index, " ", what, " is ", s->size(),
                         " bytes; a u16 length allows at most ", kMaxU16));
      }
      if (!IsValidUtf8(*s)) {
        return absl::InvalidArgumentError(
            absl::StrCat("header ", index, " ", what, " is not valid UTF-8"));
      }
    }
    block_size += 4 + key.size() + value.size();
  }
  const size_t data_start = kFixedHeaderSize + block_size;
  if (data_start > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("header block of ", block_size, " bytes: data_start exceeds u32"));
  }
  std::string out;
  out.reserve(data_start + body.size());
  out.append(kMagic.data(), kMagic.size());
  AppendU16(kVersion, &out);
  AppendU32(kFixedHeaderSize, &out);
  AppendU32(data_start, &out);
  AppendU16(headers.size(), &out);
  for (const auto& [key, value] : headers) {
    AppendU16(key.size(), &out);
    out.append(key);
    AppendU16(value.size(), &out);
    out.append(value);
  }
  out.append(body.data(), body.size());
  return out;
}

absl::StatusOr<DecodedEntry> DecodeLegacyJson(absl::string_view value) {
  DecodedEntry entry;
  if (const char* why = LegacyEnvelopeReader::Read(value, &entry)) {
    return absl::InvalidArgumentError(absl::StrCat("not a legacy JSON envelope: ", why));
  }
  return entry;
}

absl::StatusOr<DecodedEntry> DecodeDataValue(absl::string_view value) {
  if (HasBinaryV1Magic(value)) return DecodeBinaryV1(value);
  DecodedEntry entry;
  if (LegacyEnvelopeReader::Read(value, &entry) == nullptr) return entry;
  entry.format = EntryFormat::kRaw;
  entry.body.assign(value.data(), value.size());
  return entry;
}

absl::StatusOr<DecodedEntry> DecodeStreamEntry(const FieldList& fields) {
  for (const auto& [name, value] : fields) {
    if (name != kDataField) continue;
    if (value.empty()) break;  // FastStream treats an empty __data__ as absent.
    return DecodeDataValue(value);
  }
  DecodedEntry entry;
  entry.format = EntryFormat::kFields;
  entry.fields = fields;
  return entry;
}

}  // namespace redrive
