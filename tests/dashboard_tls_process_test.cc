// The dashboard beyond loopback (SPEC 11): the real wxp-server in mutual TLS with
// --dashboard on a non-loopback metrics address serves HTTPS, the handshake refuses a client
// without a certificate of the server's CA, the dashboard and its API answer only admin
// certificates (403 otherwise, and for a revoked admin), and /metrics also auditors. The
// same server refuses to start in plaintext mode, where there is no certificate to check.
#include <signal.h>

#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/net/connection.h"
#include "common/certs.h"
#include "common/shutdown_signals.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/testing/processes.h"

namespace wxp {
namespace {

class DashboardTlsProcessTest : public ::testing::Test {
 protected:
  // A client the server refuses after the TLS 1.3 handshake (no certificate, or another
  // authority's) learns it when writing its request; OpenSSL's write(2) to the closed socket
  // would raise SIGPIPE and end this whole test binary without a word.
  static void SetUpTestSuite() { IgnoreBrokenPipes(); }

  void SetUp() override {
    root_ = proc::FreshDir(::testing::TempDir() + "/dashboard_tls");
    ca_ = root_ + "/ca";
    ASSERT_TRUE(InitCa(ca_).ok());
    Issue(ca_, Role::kServer, "server");
    for (const char* admin : {"ops", "ops2"}) Issue(ca_, Role::kAdmin, admin);
    Issue(ca_, Role::kAgent, "firm-a");
    Issue(ca_, Role::kAuditor, "prometheus");
    // An admin certificate from an authority the server does not trust.
    ASSERT_TRUE(InitCa(root_ + "/other-ca").ok());
    Issue(root_ + "/other-ca", Role::kAdmin, "intruder");
  }

  void TearDown() override {
    if (server_) server_->Kill(SIGTERM);
  }

  void Issue(const std::string& ca_dir, Role role, const std::string& name) {
    CertificateRequest request;
    request.role = role;
    request.name = name;
    ASSERT_TRUE(IssueCertificate(ca_dir, request, root_ + "/certs/" + name).ok()) << name;
  }

  std::string Cert(const std::string& name) { return root_ + "/certs/" + name + "/" + name; }

  // Starts the server with the dashboard on all interfaces and returns the HTTPS port.
  int StartServer() {
    std::vector<std::string> args = proc::ServerTlsFlags(root_ + "/certs/server");
    args.insert(args.end(),
                {"--metrics_address=0.0.0.0:0", "--metrics_allow_remote", "--dashboard"});
    server_ = std::make_unique<proc::ServerProcess>(root_ + "/server", args);
    if (server_->Start() <= 0) {
      ADD_FAILURE() << proc::Tail(server_->log_path());
      return 0;
    }
    std::smatch m;
    const std::string log = proc::Tail(server_->log_path());
    if (!std::regex_search(log, m,
                           std::regex("event=dashboard_started url=https://.* port=([0-9]+)"))) {
      ADD_FAILURE() << log;
      return 0;
    }
    return std::stoi(m[1]);
  }

  // GET `path` over HTTPS as `name` (no client certificate if empty), verifying the server
  // against the CA; -1 if no HTTP answer came (the handshake failed).
  int Get(int port, const std::string& name, const std::string& path, std::string* body = nullptr) {
    std::unique_ptr<httplib::SSLClient> client =
        name.empty() ? std::make_unique<httplib::SSLClient>("localhost", port)
                     : std::make_unique<httplib::SSLClient>("localhost", port, Cert(name) + ".crt",
                                                            Cert(name) + ".key");
    client->set_ca_cert_path((root_ + "/certs/server/ca.crt").c_str());
    client->enable_server_certificate_verification(true);
    client->set_connection_timeout(5);
    client->set_read_timeout(10);
    httplib::Result res = client->Get(path.c_str());
    if (!res) return -1;
    if (body != nullptr) *body = res->body;
    return res->status;
  }

  std::unique_ptr<client::Connection> Admin(const std::string& name) {
    client::ConnectionOptions o;
    o.server_address = absl::StrCat("localhost:", server_->port());
    o.tls = {Cert(name) + ".crt", Cert(name) + ".key", root_ + "/certs/" + name + "/ca.crt"};
    o.rpc_deadline = absl::Seconds(10);
    return *client::Connection::Open(o, absl::Now());
  }

  std::string root_, ca_;
  std::unique_ptr<proc::ServerProcess> server_;
};

TEST_F(DashboardTlsProcessTest, OnlyAdminCertificatesGetTheDashboardBeyondLoopback) {
  const int port = StartServer();
  ASSERT_GT(port, 0);

  std::string body;
  EXPECT_EQ(Get(port, "ops", "/", &body), 200);
  EXPECT_NE(body.find("/assets/dashboard.js"), std::string::npos) << body;
  EXPECT_EQ(Get(port, "ops", "/api/swarms", &body), 200);
  EXPECT_NE(body.find("swarms"), std::string::npos) << body;
  EXPECT_EQ(Get(port, "ops", "/metrics", &body), 200);
  EXPECT_NE(body.find("wxp_"), std::string::npos);

  // No certificate, or one from another authority: the handshake fails, nothing answers.
  EXPECT_EQ(Get(port, "", "/"), -1);
  EXPECT_EQ(Get(port, "intruder", "/"), -1);
  // Plain HTTP on the HTTPS port gets no page either.
  {
    httplib::Client plain("127.0.0.1", port);
    plain.set_connection_timeout(5);
    plain.set_read_timeout(5);
    httplib::Result res = plain.Get("/");
    EXPECT_TRUE(!res || res->status >= 400) << res->body;
  }

  // A certificate of the right authority but not an admin's: 403 with the reason.
  EXPECT_EQ(Get(port, "firm-a", "/", &body), 403);
  EXPECT_NE(body.find("needs role admin"), std::string::npos) << body;
  EXPECT_EQ(Get(port, "firm-a", "/api/swarms"), 403);
  EXPECT_EQ(Get(port, "firm-a", "/metrics"), 403);
  // An auditor (a Prometheus) may scrape, not read the dashboard.
  EXPECT_EQ(Get(port, "prometheus", "/metrics"), 200);
  EXPECT_EQ(Get(port, "prometheus", "/"), 403);
  EXPECT_EQ(Get(port, "prometheus", "/api/swarms"), 403);

  // A revoked admin is refused like on the RPCs. The server must have seen it to revoke it.
  {
    std::unique_ptr<client::Connection> ops2 = Admin("ops2");
    wxp::v1::ListSwarmsRequest list;
    wxp::v1::ListSwarmsResponse swarms;
    ASSERT_TRUE(ops2->admin().ListSwarms(ops2->NewContext().get(), list, &swarms).ok());
  }
  EXPECT_EQ(Get(port, "ops2", "/"), 200);
  std::unique_ptr<client::Connection> ops = Admin("ops");
  wxp::v1::RevokeClientRequest revoke;
  revoke.set_identity("ops2");
  wxp::v1::ClientInfo info;
  ASSERT_TRUE(ops->admin().RevokeClient(ops->NewContext().get(), revoke, &info).ok());
  EXPECT_EQ(Get(port, "ops2", "/", &body), 403);
  EXPECT_NE(body.find("revoked"), std::string::npos) << body;
  EXPECT_EQ(Get(port, "ops", "/"), 200);
}

TEST_F(DashboardTlsProcessTest, PlaintextServerRefusesARemoteDashboard) {
  proc::ServerProcess server(root_ + "/plain", {"--plaintext", "--metrics_address=0.0.0.0:0",
                                                "--metrics_allow_remote", "--dashboard"});
  EXPECT_EQ(server.Start(), 0);
  EXPECT_NE(proc::Tail(server.log_path()).find("admin certificates only"), std::string::npos)
      << proc::Tail(server.log_path());
  server.Kill(SIGTERM);
}

}  // namespace
}  // namespace wxp
