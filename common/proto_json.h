// Proto messages as the JSON wxp's operator tools show: proto3 JSON with the .proto field
// names and every field printed (zeros and empty lists too), indented. One conversion for
// `wxpctl ... --output json` and the server's dashboard API, so both read the same.
#ifndef WXP_COMMON_PROTO_JSON_H_
#define WXP_COMMON_PROTO_JSON_H_

#include <string>

#include "google/protobuf/message.h"

namespace wxp {

// The message as JSON, without a trailing newline. Never fails for wxp's messages (they
// hold no Any); should the library refuse one, the answer is "{}".
std::string ProtoJson(const google::protobuf::Message& message);

}  // namespace wxp

#endif  // WXP_COMMON_PROTO_JSON_H_
