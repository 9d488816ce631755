// Reading the text-format protobuf files people write by hand: swarm specs, server and agent
// configurations.
#ifndef WXP_COMMON_TEXT_PROTO_H_
#define WXP_COMMON_TEXT_PROTO_H_

#include <string>

#include "absl/status/status.h"
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

}  // namespace wxp

#endif  // WXP_COMMON_TEXT_PROTO_H_
