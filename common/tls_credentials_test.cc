#include "common/tls_credentials.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/certs.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

class TlsCredentialsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(::testing::TempDir() + "/tls_credentials_test");
    CaOptions ca;
    ca.force = true;
    ASSERT_TRUE(InitCa(*dir_, ca).ok());
    for (auto [role, name] : {std::pair{Role::kServer, "server"}, {Role::kAgent, "firm-a"}}) {
      CertificateRequest req;
      req.role = role;
      req.name = name;
      ASSERT_TRUE(IssueCertificate(*dir_, req, *dir_, /*force=*/true).ok());
    }
  }
  static TlsFiles Files(const std::string& name) {
    return {absl::StrCat(*dir_, "/", name, ".crt"), absl::StrCat(*dir_, "/", name, ".key"),
            absl::StrCat(*dir_, "/ca.crt")};
  }
  static std::string* dir_;
};
std::string* TlsCredentialsTest::dir_ = nullptr;

TEST_F(TlsCredentialsTest, OneSecurityYieldsBothEnds) {
  const Security server = Security::MutualTls(Files("server"));
  const Security agent = Security::MutualTls(Files("firm-a"));
  EXPECT_FALSE(server.plaintext());
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> s =
      server.ServerCredentials(absl::Now());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_NE(*s, nullptr);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> c =
      agent.ChannelCredentials(absl::Now());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NE(*c, nullptr);
}

TEST_F(TlsCredentialsTest, RolesAreNotInterchangeable) {
  EXPECT_EQ(Security::MutualTls(Files("firm-a")).ServerCredentials(absl::Now()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Security::MutualTls(Files("server")).ChannelCredentials(absl::Now()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(TlsCredentialsTest, ErrorsNameTheFile) {
  TlsFiles missing = Files("firm-a");
  missing.key_file = *dir_ + "/absent.key";
  absl::Status s = ClientTlsCredentials(missing, absl::Now()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("absent.key"), std::string::npos) << s;
  // An expired certificate is reported at start.
  s = ClientTlsCredentials(Files("firm-a"), absl::Now() + absl::Hours(24 * 900)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
}

TEST_F(TlsCredentialsTest, RefusesAKeyOthersCanRead) {
  const TlsFiles f = Files("firm-a");
  ASSERT_EQ(::chmod(f.key_file.c_str(), 0644), 0);
  const absl::Status s = ClientTlsCredentials(f, absl::Now()).status();
  ASSERT_EQ(::chmod(f.key_file.c_str(), 0600), 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("chmod 600"), std::string::npos) << s;
}

TEST_F(TlsCredentialsTest, IncompleteFilesAreInvalid) {
  TlsFiles f = Files("firm-a");
  f.ca_file.clear();
  EXPECT_FALSE(f.complete());
  EXPECT_EQ(Security::MutualTls(f).ChannelCredentials(absl::Now()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Security::MutualTls(f).ServerCredentials(absl::Now()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SecurityTest, PlaintextNeedsNoFiles) {
  const Security p = Security::Plaintext();
  EXPECT_TRUE(p.plaintext());
  EXPECT_TRUE(p.ServerCredentials(absl::Now()).ok());
  EXPECT_TRUE(p.ChannelCredentials(absl::Now()).ok());
}

}  // namespace
}  // namespace wxp
