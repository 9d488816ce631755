#include "common/identity.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

using ::testing::HasSubstr;

TEST(RoleTest, NamesRoundTripAndUnknownIsRefused) {
  for (Role r : {Role::kServer, Role::kAgent, Role::kAdmin, Role::kAuditor}) {
    absl::StatusOr<Role> back = ParseRole(RoleName(r));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, r);
  }
  EXPECT_EQ(RoleName(Role::kAuditor), "auditor");
  for (const char* bad : {"", "Admin", "root", "agent "}) {
    absl::StatusOr<Role> r = ParseRole(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_THAT(std::string(ParseRole("root").status().message()),
              HasSubstr("expected server, agent, admin or auditor"));
}

TEST(RequireRoleTest, MessagesNameClientRoleAndRpc) {
  const Identity agent{"firm-a", Role::kAgent};
  EXPECT_TRUE(RequireRole(agent, {Role::kAgent}, "AgentService.Report").ok());
  EXPECT_TRUE(RequireRole(agent, {Role::kAdmin, Role::kAgent}, "X.Y").ok());
  absl::Status s = RequireRole(agent, {Role::kAdmin}, "AdminService.CreateSwarm");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(),
            "client 'firm-a' has role agent; AdminService.CreateSwarm needs role admin");
  const Identity server{"server", Role::kServer};
  s = RequireRole(server, {Role::kAgent, Role::kAdmin}, "AdminService.ListSwarms");
  EXPECT_EQ(s.message(),
            "client 'server' has role server; AdminService.ListSwarms needs role agent or admin");
  EXPECT_EQ(RequireRole(agent, {}, "X.Y").code(), absl::StatusCode::kPermissionDenied);
}

TEST(RequireRoleTest, AnAuditorIsNotAnAgentOrAnAdmin) {
  const Identity auditor{"audit-1", Role::kAuditor};
  absl::Status s = RequireRole(auditor, {Role::kAgent, Role::kAdmin}, "AgentService.UploadBlob");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(),
            "client 'audit-1' has role auditor; AgentService.UploadBlob needs role agent or "
            "admin");
}

}  // namespace
}  // namespace wxp
