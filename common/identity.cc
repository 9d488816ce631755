#include "common/identity.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace wxp {
namespace {

constexpr Role kAllRoles[] = {Role::kServer, Role::kAgent, Role::kAdmin, Role::kAuditor};

// "a, b or c".
std::string NamesOf(absl::Span<const Role> roles) {
  std::vector<absl::string_view> names;
  for (Role r : roles) names.push_back(RoleName(r));
  if (names.size() < 2) return absl::StrJoin(names, "");
  return absl::StrCat(absl::StrJoin(names.begin(), names.end() - 1, ", "), " or ", names.back());
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kServer:
      return "server";
    case Role::kAgent:
      return "agent";
    case Role::kAdmin:
      return "admin";
    case Role::kAuditor:
      return "auditor";
  }
  return "unknown";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (Role r : kAllRoles) {
    if (name == RoleName(r)) return r;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", name, "'; expected ", NamesOf(kAllRoles)));
}

absl::Status RequireRole(const Identity& identity, absl::Span<const Role> allowed,
                         absl::string_view rpc) {
  for (Role r : allowed) {
    if (identity.role == r) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("client '", identity.name, "' has role ", RoleName(identity.role), "; ", rpc,
                   " needs role ", allowed.empty() ? "(none allowed)" : NamesOf(allowed)));
}

}  // namespace wxp
