// "Another replica leads this swarm" (SPEC 6.1) as a typed status: UNAVAILABLE carrying a
// wxp.v1.LeaderRedirect payload, which common/grpc_status.h sends as an error detail and
// reads back on the client. Clients decide from the payload, never from the message text.
#ifndef WXP_COMMON_LEADER_REDIRECT_H_
#define WXP_COMMON_LEADER_REDIRECT_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "proto/wxp.pb.h"

namespace wxp {

// The payload's type URL: "type.googleapis.com/wxp.v1.LeaderRedirect".
const std::string& LeaderRedirectTypeUrl();

// UNAVAILABLE naming the leader in its message (for people) and in its payload.
absl::Status LeaderRedirectError(const std::string& swarm, const std::string& leader_address,
                                 const std::string& leader_replica_id);

// The redirect a status carries; nullopt if it carries none (or one that does not parse).
std::optional<wxp::v1::LeaderRedirect> LeaderRedirectOf(const absl::Status& status);

}  // namespace wxp

#endif  // WXP_COMMON_LEADER_REDIRECT_H_
