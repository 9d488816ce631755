// Who a party to WXP is: a name and a role (SPEC 5.1). Certificates carry it (common/certs.h),
// the server reads it from each connection (server/auth.h), admits or refuses the caller by
// its role (RequireRole, the one role check), and the coordinator and store record it.
//
// All functions are thread-safe.
#ifndef WXP_COMMON_IDENTITY_H_
#define WXP_COMMON_IDENTITY_H_

#include <string>
#include <tuple>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace wxp {

// What a party is. A server authenticates wxp-server to its clients; agents and admins are
// the clients the server's RPCs serve. An auditor is a client that no RPC admits yet.
enum class Role { kServer, kAgent, kAdmin, kAuditor };

// "server", "agent", "admin", "auditor".
absl::string_view RoleName(Role role);
// The inverse of RoleName (exact, lower case); InvalidArgument listing the valid roles.
absl::StatusOr<Role> ParseRole(absl::string_view name);

// A party as the server knows it.
struct Identity {
  // The client's identity on the server (the certificate's CN): what the client table,
  // ownership of particles, audit records and revocation refer to.
  std::string name;
  Role role = Role::kAgent;
};

inline bool operator==(const Identity& a, const Identity& b) {
  return std::tie(a.name, a.role) == std::tie(b.name, b.role);
}

// OK if `identity.role` is one of `allowed`; otherwise PERMISSION_DENIED in words a person
// can act on, e.g. "client 'firm-a' has role agent; AdminService.CreateSwarm needs role
// admin". `rpc` names the call.
absl::Status RequireRole(const Identity& identity, absl::Span<const Role> allowed,
                         absl::string_view rpc);

}  // namespace wxp

#endif  // WXP_COMMON_IDENTITY_H_
