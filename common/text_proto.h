// Reading the text-format protobuf files people write by hand: swarm specs, server and agent
// configurations.
#ifndef WXP_COMMON_TEXT_PROTO_H_
#define WXP_COMMON_TEXT_PROTO_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace wxp {

// Parses `text` (the contents of the file `path`) into `out`. On failure InvalidArgument
// "<path>: not a text-format <message type>: ..." with the line:column and reason of the
// first syntax error, or the field holding a string that is not valid UTF-8 (text format
// accepts any bytes, e.g. "\377", but protobuf refuses to send such a string, and the peer
// would only see an opaque error).
absl::Status ParseTextProto(const std::string& text, const std::string& path,
                            google::protobuf::Message* out);

// True if `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF), the rule protobuf applies to string fields.
bool IsValidUtf8(const std::string& s);

// The longest prefix of `s` of whole characters that fits in `max_bytes`, with every byte
// that is not part of a well-formed character replaced by '?': always valid UTF-8, so it
// can go in a protobuf string field (failure reasons quoting a program's output).
std::string Utf8Prefix(absl::string_view s, size_t max_bytes);

}  // namespace wxp

#endif  // WXP_COMMON_TEXT_PROTO_H_
