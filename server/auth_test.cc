// Mutual TLS over a real gRPC server on a loopback port, with certificates made by
// common/certs: who gets through the handshake, and what identity a handler sees.
#include "server/auth.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/certs.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/wxp.grpc.pb.h"

namespace wxp::server {
namespace {

using ::testing::HasSubstr;

// A stand-in AdminService: ListSwarms identifies the caller, echoes the identity in
// trailing metadata (so a refused call still shows who the server thought it was), and
// admits admins only.
class EchoAdmin final : public wxp::v1::AdminService::Service {
 public:
  explicit EchoAdmin(TransportSecurity security) : security_(security) {}

  grpc::Status ListSwarms(grpc::ServerContext* ctx, const wxp::v1::ListSwarmsRequest*,
                          wxp::v1::ListSwarmsResponse*) override {
    absl::StatusOr<PeerIdentity> id = IdentifyPeer(*ctx, security_);
    if (!id.ok()) return ToGrpc(id.status());
    ctx->AddTrailingMetadata("x-echo-name", id->identity.name);
    ctx->AddTrailingMetadata("x-echo-role", std::string(RoleName(id->identity.role)));
    ctx->AddTrailingMetadata("x-echo-fingerprint", id->fingerprint);
    return ToGrpc(RequireRole(id->identity, {Role::kAdmin}, "AdminService.ListSwarms"));
  }

 private:
  static grpc::Status ToGrpc(const absl::Status& s) {
    if (s.ok()) return grpc::Status::OK;
    return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
  }
  TransportSecurity security_;
};

struct CallResult {
  grpc::Status status;
  std::string name;
  std::string role;
  std::string fingerprint;
};

std::string Read(const std::string& path) {
  absl::StatusOr<std::string> s = ReadFile(path);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : "";
}

class AuthTest : public ::testing::Test {
 protected:
  // One set of certificates for the whole suite: the CA, the server, an admin, an agent, an
  // auditor, an expired agent, and an agent from an unrelated CA.
  static void SetUpTestSuite() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    root_ = new std::string(absl::StrCat(tmp ? tmp : "/tmp", "/auth_test"));
    std::filesystem::remove_all(*root_);
    CaOptions ca;
    ca.not_before = absl::Now() - absl::Hours(24 * 60);  // older than the expired cert
    ASSERT_TRUE(InitCa(Dir("ca"), ca).ok());
    Issue("ca", Role::kServer, "server", Dir("server"));
    Issue("ca", Role::kAdmin, "ops", Dir("ops"));
    Issue("ca", Role::kAgent, "firm-a", Dir("firm-a"));
    Issue("ca", Role::kAuditor, "audit-1", Dir("audit-1"));
    CertificateRequest expired;
    expired.role = Role::kAgent;
    expired.name = "firm-old";
    expired.not_before = absl::Now() - absl::Hours(24 * 30);
    expired.validity = absl::Hours(24);
    ASSERT_TRUE(IssueCertificate(Dir("ca"), expired, Dir("firm-old")).ok());
    CertificateRequest elsewhere;
    elsewhere.role = Role::kServer;
    elsewhere.name = "elsewhere";
    elsewhere.dns_names = {"wxp.elsewhere.example"};
    ASSERT_TRUE(IssueCertificate(Dir("ca"), elsewhere, Dir("elsewhere")).ok());

    ASSERT_TRUE(InitCa(Dir("other-ca")).ok());
    Issue("other-ca", Role::kAgent, "firm-a", Dir("intruder"));
    Issue("other-ca", Role::kServer, "server", Dir("fake-server"));
  }
  static void TearDownTestSuite() { delete root_; }

  static std::string Dir(const std::string& leaf) { return absl::StrCat(*root_, "/", leaf); }
  static void Issue(const std::string& ca, Role role, const std::string& name,
                    const std::string& out) {
    CertificateRequest req;
    req.role = role;
    req.name = name;
    absl::Status s = IssueCertificate(Dir(ca), req, out);
    ASSERT_TRUE(s.ok()) << s;
  }
  static TlsFiles Files(const std::string& dir, const std::string& name) {
    return {Dir(dir) + "/" + name + ".crt", Dir(dir) + "/" + name + ".key", Dir(dir) + "/ca.crt"};
  }
  // Raw gRPC client credentials, bypassing ClientTlsCredentials' checks, as an attacker or
  // a misconfigured client would present them.
  static std::shared_ptr<grpc::ChannelCredentials> RawClient(const std::string& trust_ca_dir,
                                                             const std::string& cert_dir,
                                                             const std::string& name) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = Read(Dir(trust_ca_dir) + "/ca.crt");
    if (!name.empty()) {
      o.pem_cert_chain = Read(Dir(cert_dir) + "/" + name + ".crt");
      o.pem_private_key = Read(Dir(cert_dir) + "/" + name + ".key");
    }
    return grpc::SslCredentials(o);
  }

  void StartServer(std::shared_ptr<grpc::ServerCredentials> creds, TransportSecurity security) {
    service_ = std::make_unique<EchoAdmin>(security);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", std::move(creds), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void StartTlsServer(const std::string& dir = "server", const std::string& name = "server") {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
        ServerTlsCredentials(Files(dir, name), absl::Now());
    ASSERT_TRUE(creds.ok()) << creds.status();
    StartServer(*creds, TransportSecurity::kMutualTls);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  CallResult Call(std::shared_ptr<grpc::ChannelCredentials> creds,
                  const std::string& host = "127.0.0.1",
                  const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
    auto channel = grpc::CreateChannel(absl::StrCat(host, ":", port_), creds);
    auto stub = wxp::v1::AdminService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    for (const auto& [k, v] : metadata) ctx.AddMetadata(k, v);
    wxp::v1::ListSwarmsResponse resp;
    CallResult r;
    r.status = stub->ListSwarms(&ctx, wxp::v1::ListSwarmsRequest(), &resp);
    auto get = [&](const char* key) {
      auto it = ctx.GetServerTrailingMetadata().find(key);
      return it == ctx.GetServerTrailingMetadata().end()
                 ? std::string()
                 : std::string(it->second.data(), it->second.size());
    };
    r.name = get("x-echo-name");
    r.role = get("x-echo-role");
    r.fingerprint = get("x-echo-fingerprint");
    return r;
  }
  std::shared_ptr<grpc::ChannelCredentials> Client(const std::string& dir,
                                                   const std::string& name) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
        ClientTlsCredentials(Files(dir, name), absl::Now());
    EXPECT_TRUE(creds.ok()) << creds.status();
    return creds.ok() ? *creds : nullptr;
  }

  static std::string* root_;
  std::unique_ptr<EchoAdmin> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

std::string* AuthTest::root_ = nullptr;

TEST_F(AuthTest, AdminIsIdentifiedFromItsCertificate) {
  StartTlsServer();
  CallResult r = Call(Client("ops", "ops"));
  ASSERT_TRUE(r.status.ok()) << r.status.error_code() << " " << r.status.error_message();
  EXPECT_EQ(r.name, "ops");
  EXPECT_EQ(r.role, "admin");
  absl::StatusOr<CertificateIdentity> cert =
      ParseCertificateIdentity(Read(Dir("ops") + "/ops.crt"));
  ASSERT_TRUE(cert.ok());
  EXPECT_EQ(r.fingerprint, cert->fingerprint);
}

TEST_F(AuthTest, AgentIsIdentifiedAndRefusedAnAdminRpc) {
  StartTlsServer();
  CallResult r = Call(Client("firm-a", "firm-a"));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(r.status.error_message(),
            "client 'firm-a' has role agent; AdminService.ListSwarms needs role admin");
  EXPECT_EQ(r.name, "firm-a");
  EXPECT_EQ(r.role, "agent");
}

// Auditor certificates are issued already; no RPC admits the role yet.
TEST_F(AuthTest, AuditorIsIdentifiedAndRefusedAnAdminRpc) {
  StartTlsServer();
  CallResult r = Call(Client("audit-1", "audit-1"));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(r.status.error_message(),
            "client 'audit-1' has role auditor; AdminService.ListSwarms needs role admin");
  EXPECT_EQ(r.name, "audit-1");
  EXPECT_EQ(r.role, "auditor");
}

TEST_F(AuthTest, MetadataCannotOverrideTheCertificate) {
  StartTlsServer();
  CallResult r = Call(Client("firm-a", "firm-a"), "127.0.0.1",
                      {{kInsecureIdentityMetadata, "ops"}, {kInsecureRoleMetadata, "admin"}});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(r.name, "firm-a");
  EXPECT_EQ(r.role, "agent");
}

TEST_F(AuthTest, PlaintextIdentityIsRefusedOnATlsServer) {
  // A server wired to the plaintext identity by mistake, on a TLS port: the metadata still
  // does not count.
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      ServerTlsCredentials(Files("server", "server"), absl::Now());
  ASSERT_TRUE(creds.ok());
  StartServer(*creds, TransportSecurity::kInsecurePlaintext);
  CallResult r = Call(Client("firm-a", "firm-a"), "127.0.0.1",
                      {{kInsecureIdentityMetadata, "ops"}, {kInsecureRoleMetadata, "admin"}});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(r.status.error_message(), HasSubstr("only on a plaintext server"));
}

TEST_F(AuthTest, ClientWithoutCertificateFailsTheHandshake) {
  StartTlsServer();
  CallResult r = Call(RawClient("ca", "", ""));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
  EXPECT_TRUE(r.name.empty());
}

TEST_F(AuthTest, CertificateFromAnotherCaFailsTheHandshake) {
  StartTlsServer();
  // Same name as a legitimate client, signed by a stranger.
  CallResult r = Call(RawClient("ca", "intruder", "firm-a"));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
  EXPECT_TRUE(r.name.empty());
  // And ClientTlsCredentials says why before any connection is tried.
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = ClientTlsCredentials(
      {Dir("intruder") + "/firm-a.crt", Dir("intruder") + "/firm-a.key", Dir("ca") + "/ca.crt"},
      absl::Now());
  EXPECT_EQ(creds.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(AuthTest, ExpiredCertificateFailsTheHandshake) {
  StartTlsServer();
  CallResult r = Call(RawClient("ca", "firm-old", "firm-old"));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
  EXPECT_TRUE(r.name.empty());
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      ClientTlsCredentials(Files("firm-old", "firm-old"), absl::Now());
  EXPECT_EQ(creds.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(creds.status().message()), HasSubstr("expired"));
}

TEST_F(AuthTest, ServerCertificateValidatesForLocalhostAndLoopbackIp) {
  StartTlsServer();
  EXPECT_TRUE(Call(Client("ops", "ops"), "127.0.0.1").status.ok());
  CallResult r = Call(Client("ops", "ops"), "localhost");
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
}

TEST_F(AuthTest, ClientRefusesAServerItCannotVerify) {
  // A server whose certificate names another host: the client's hostname check fails.
  StartTlsServer("elsewhere", "elsewhere");
  EXPECT_EQ(Call(Client("ops", "ops")).status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AuthTest, ClientRefusesAServerFromAnotherCa) {
  grpc::SslServerCredentialsOptions o(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  o.pem_root_certs = Read(Dir("ca") + "/ca.crt");  // it would even accept our clients
  o.pem_key_cert_pairs.push_back(
      {Read(Dir("fake-server") + "/server.key"), Read(Dir("fake-server") + "/server.crt")});
  StartServer(grpc::SslServerCredentials(o), TransportSecurity::kMutualTls);
  EXPECT_EQ(Call(Client("ops", "ops")).status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AuthTest, CredentialFilesAreCheckedAtStart) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> s =
      ServerTlsCredentials(Files("ops", "ops"), absl::Now());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("--role server"));

  s = ServerTlsCredentials(
      {Dir("server") + "/server.crt", Dir("ops") + "/ops.key", Dir("ca") + "/ca.crt"}, absl::Now());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("ops.key"));

  s = ServerTlsCredentials(
      {Dir("server") + "/missing.crt", Dir("server") + "/server.key", Dir("ca") + "/ca.crt"},
      absl::Now());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("missing.crt"));

  // A private key others can read is refused, naming the fix.
  const std::string loose = Dir("loose");
  std::filesystem::create_directories(loose);
  for (const char* f : {"/server.crt", "/server.key", "/ca.crt"}) {
    std::filesystem::copy_file(Dir("server") + f, loose + f,
                               std::filesystem::copy_options::overwrite_existing);
  }
  std::filesystem::permissions(loose + "/server.key", std::filesystem::perms(0640));
  s = ServerTlsCredentials(Files("loose", "server"), absl::Now());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("chmod 600"));
  std::filesystem::permissions(loose + "/server.key", std::filesystem::perms(0400));
  EXPECT_TRUE(ServerTlsCredentials(Files("loose", "server"), absl::Now()).ok());

  // A CA bundle: every certificate in it is trusted.
  const std::string bundle = Read(Dir("other-ca") + "/ca.crt") + Read(Dir("ca") + "/ca.crt");
  ASSERT_TRUE(WriteFileAtomically(loose + "/ca.crt", bundle).ok());
  EXPECT_TRUE(ServerTlsCredentials(Files("loose", "server"), absl::Now()).ok());

  // The server certificate checked at a time it is not valid yet / any more.
  s = ServerTlsCredentials(Files("server", "server"), absl::Now() + absl::Hours(24 * 900));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);

  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> c =
      ClientTlsCredentials(Files("server", "server"), absl::Now());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("server certificate"));
}

TEST_F(AuthTest, PlaintextModeTakesIdentityFromMetadata) {
  StartServer(grpc::InsecureServerCredentials(), TransportSecurity::kInsecurePlaintext);
  auto plain = grpc::InsecureChannelCredentials();
  CallResult r = Call(plain, "127.0.0.1",
                      {{kInsecureIdentityMetadata, "ops"}, {kInsecureRoleMetadata, "admin"}});
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.name, "ops");
  EXPECT_EQ(r.role, "admin");
  EXPECT_TRUE(r.fingerprint.empty());

  r = Call(plain, "127.0.0.1",
           {{kInsecureIdentityMetadata, "firm-a"}, {kInsecureRoleMetadata, "agent"}});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(r.role, "agent");

  EXPECT_EQ(Call(plain).status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  r = Call(plain, "127.0.0.1",
           {{kInsecureIdentityMetadata, "ops"}, {kInsecureRoleMetadata, "root"}});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(r.status.error_message(), HasSubstr("unknown role 'root'"));
  r = Call(plain, "127.0.0.1",
           {{kInsecureIdentityMetadata, "a b"}, {kInsecureRoleMetadata, "admin"}});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  r = Call(plain, "127.0.0.1",
           {{kInsecureIdentityMetadata, "ops"},
            {kInsecureIdentityMetadata, "firm-a"},
            {kInsecureRoleMetadata, "admin"}});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AuthTest, CertificateIdentityOnAPlaintextServerIsUnauthenticated) {
  StartServer(grpc::InsecureServerCredentials(), TransportSecurity::kMutualTls);
  CallResult r = Call(grpc::InsecureChannelCredentials(), "127.0.0.1",
                      {{kInsecureIdentityMetadata, "ops"}, {kInsecureRoleMetadata, "admin"}});
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(r.status.error_message(), HasSubstr("no client certificate"));
}

}  // namespace
}  // namespace wxp::server
