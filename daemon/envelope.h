// The codec for the `__data__` field of a Redis stream entry, wire-compatible
// with FastStream 0.7 / EggAI 0.3.x (see docs/eggai-compat.md and
// tests/data/vectors/README.md).
//
// A `__data__` value is one of:
//   1. FastStream's BinaryMessageFormatV1 (what FastStream 0.7 and EggAI
//   write):
//
//        offset  size  field (integers big-endian)
//        0       8     magic 89 42 49 4E 0D 0A 1A 0A
//        8       2     version = 1
//        10      4     headers_start (18 when written by FastStream or us)
//        14      4     data_start
//        hs      2     header count
//        hs+2    ...   per header: u16 key length, key, u16 value length, value
//        ds      rest  body (no length field; runs to the end of the value)
//
//   2. FastStream <= 0.6's legacy JSON envelope {"data": "<str>", "headers":
//   {..}}.
//   3. Anything else: raw bytes, no headers.
//
// Decoding here is STRICT where FastStream's reader is silently lenient: a
// value that carries the binary magic either decodes exactly or yields an
// error saying what is wrong (the caller treats it as poison). FastStream
// instead falls back to "raw" or returns a truncated header or empty body.
//
// All functions are pure, thread-safe and never throw; they accept arbitrary
// bytes (fuzzed by tests/fuzz/envelope_fuzz.cc).
#ifndef REDRIVE_DAEMON_ENVELOPE_H_
#define REDRIVE_DAEMON_ENVELOPE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace redrive {

// Ordered header list; duplicate keys are allowed and kept in wire order.
using HeaderList = std::vector<std::pair<std::string, std::string>>;
// A stream entry's field/value pairs in Redis order (binary-safe, duplicates
// allowed).
using FieldList = std::vector<std::pair<std::string, std::string>>;

// The stream-entry field FastStream/EggAI put the message into.
inline constexpr absl::string_view kDataField = "__data__";

struct Envelope {
  HeaderList headers;
  std::string body;
};

enum class EntryFormat {
  kBinaryV1,    // BinaryMessageFormatV1 in `__data__`.
  kLegacyJson,  // Legacy JSON envelope in `__data__`.
  kRaw,         // `__data__` holds neither: the whole value is the body.
  kFields,      // No usable `__data__`: a plain field map (another producer).
};

struct DecodedEntry {
  EntryFormat format = EntryFormat::kRaw;
  HeaderList headers;
  // The message body. Empty for kFields (FastStream would JSON-dump the field
  // map into the body; that text depends on the JSON library, so callers that
  // need a body build it from `fields` themselves).
  std::string body;
  // kFields only: the entry's fields exactly as given. Empty otherwise.
  FieldList fields;
  // kBinaryV1 only: the u16 header lengths were UTF-8 *character* counts
  // (the FastStream 0.7 / EggAI 0.3.4 writer defect for non-ASCII headers),
  // and the headers were recovered exactly from them. Re-encoding with
  // EncodeBinaryV1 repairs the entry.
  bool recovered_char_length_headers = false;
};

// True iff `value` starts with the 8-byte BinaryMessageFormatV1 magic.
bool HasBinaryV1Magic(absl::string_view value);

// Strictly decodes a BinaryMessageFormatV1 value into format kBinaryV1.
//
// Accepted iff: magic present; version == 1; 18 <= headers_start;
// headers_start + 2 <= data_start <= value.size(); the header block, read from
// headers_start, ends EXACTLY at data_start (bytes between 18 and
// headers_start are ignored, bytes between the block and data_start are not
// allowed); every key and value is valid UTF-8 (FastStream decodes them as
// str). Lengths are read as byte counts first. Only if that reading fails
// (overrun, invalid UTF-8, or not ending at data_start) are they re-read as
// UTF-8 character counts (code points, as Python's len()); if that reading
// meets every rule above the decode succeeds with
// recovered_char_length_headers = true. A byte-count reading that succeeds
// always wins.
//
// Headers come back in wire order, duplicates included (FastStream keeps only
// the last value of a duplicated key; callers wanting that take the last).
// A body truncated at the end of the value is undetectable (no body length).
//
// Errors:
//   InvalidArgument  the magic is absent.
//   Unimplemented    version != 1.
//   DataLoss         anything truncated, out of range or inconsistent, with a
//                    precise message (headers numbered from 0), e.g.
//                    "header 2 value length 40 runs past data_start 57".
//                    When the character-count re-reading fails differently,
//                    its reason is appended after "; read as character
//                    counts: ".
absl::StatusOr<DecodedEntry> DecodeBinaryV1(absl::string_view value);

// Encodes headers (in the given order, duplicates kept) and body as
// BinaryMessageFormatV1 with correct UTF-8 BYTE lengths, headers_start 18 and
// data_start = 20 + size of the header block. For ASCII headers the bytes are
// identical to FastStream's encoder output; for non-ASCII headers they differ
// from FastStream's (which writes character counts) but FastStream reads them
// correctly.
//
// InvalidArgument if there are more than 65535 headers, a key or value is
// longer than 65535 bytes or is not valid UTF-8 (our decoder, like
// FastStream's, would reject it), or data_start would not fit in a u32.
absl::StatusOr<std::string> EncodeBinaryV1(const HeaderList& headers, absl::string_view body);

// Decodes a legacy JSON envelope into format kLegacyJson.
//
// A value is a legacy envelope iff it is UTF-8 JSON whose top level is an
// object with a string member "data", optionally an object member "headers",
// and NO other members. The body is "data" as UTF-8; headers are "headers"'s
// members in document order (a duplicated JSON key keeps its first position
// and last value, as Python's json does).
//
// Stricter than FastStream on purpose (vector f5): FastStream treats ANY JSON
// object with a string "data" member as an envelope and discards every other
// member, so a plain JSON payload such as a CloudEvent with a string "data"
// loses its id/type/... . FastStream 0.6's writer only ever produced exactly
// {"data", "headers"}, so an object with other members is a payload, and is
// read as raw by DecodeDataValue with nothing lost. {"data": "x"} alone (f3)
// is still an envelope with no headers, as FastStream reads it.
//
// Non-string header values (f7: {"retries": 3}): FastStream passes the Python
// value through untyped; we keep the header and render the value as its
// compact JSON text ("3", "true", "null", "[1,\"a\"]", "{\"b\":2,\"a\":1}":
// whitespace removed, member order and number spelling as written, strings
// re-escaped minimally), so nothing is dropped and string values are
// unaffected.
//
// Cost is linear in the value, and a value that is not an envelope is
// rejected at its first disqualifying member without being parsed further.
//
// InvalidArgument (with the reason) when the value is not a legacy envelope.
absl::StatusOr<DecodedEntry> DecodeLegacyJson(absl::string_view value);

// Decodes one `__data__` value the way a reader must, in order:
//   magic present  -> DecodeBinaryV1; its error (DataLoss/Unimplemented) is
//                     returned as is: the caller treats the entry as poison.
//   legacy envelope -> kLegacyJson (see DecodeLegacyJson).
//   otherwise       -> kRaw: body = the whole value, no headers (this includes
//                      the empty value and plain JSON payloads).
// Never returns InvalidArgument.
absl::StatusOr<DecodedEntry> DecodeDataValue(absl::string_view value);

// Decodes a whole stream entry. The field named exactly (byte for byte)
// "__data__" is decoded with DecodeDataValue and any other fields are ignored,
// as FastStream does. If "__data__" occurs more than once, the FIRST one is
// used (Redis keeps both; FastStream's dict would keep the last). An entry
// without "__data__", or whose (first) "__data__" is empty, is kFields with
// `fields` copied in order: FastStream likewise treats an empty `__data__` as
// absent (vector s2). Errors are DecodeDataValue's.
absl::StatusOr<DecodedEntry> DecodeStreamEntry(const FieldList& fields);

}  // namespace redrive

#endif  // REDRIVE_DAEMON_ENVELOPE_H_
