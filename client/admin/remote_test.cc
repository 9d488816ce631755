#include "client/admin/remote.h"

#include <cstdlib>

#include "client/admin/run_for_test.h"
#include "gtest/gtest.h"

namespace wxp::admin {
namespace {

cli::ParsedArgs Args(const std::vector<std::string>& words) {
  return *cli::ParseArgs(words, ConnectionFlags());
}

TEST(RemoteTest, ConfigFileGivesDefaultsThatFlagsOverride) {
  auto file = ParseConfigText(
      "# ops laptop\n"
      "server = wxp.example:7443\n"
      "tls-cert = certs/ops.crt   # relative to the file\n"
      "tls_key=/abs/ops.key\n"
      "tls_ca = certs/ca.crt\n"
      "\n"
      "output = json\n",
      "/etc/wxp");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->at("tls_cert"), "/etc/wxp/certs/ops.crt");
  EXPECT_EQ(file->at("tls_key"), "/abs/ops.key");
  EXPECT_EQ(file->at("output"), "json");
  auto o = ResolveConnectionOptions(Args({}), *file);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->server_address, "wxp.example:7443");
  EXPECT_EQ(o->tls.ca_file, "/etc/wxp/certs/ca.crt");
  EXPECT_FALSE(o->plaintext);
  EXPECT_EQ(o->role, Role::kAdmin);
  EXPECT_EQ(o->rpc_deadline, absl::Seconds(30));
  o = ResolveConnectionOptions(Args({"--server=other:1", "--tls_ca", "mine.crt", "--timeout=2.5"}),
                               *file);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->server_address, "other:1");
  EXPECT_EQ(o->tls.ca_file, "mine.crt");
  EXPECT_EQ(o->rpc_deadline, absl::Milliseconds(2500));
}

TEST(RemoteTest, ConfigErrorsNameTheLine) {
  auto bad = ParseConfigText("server = a:1\nnonsense\n", "");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("line 2"), std::string::npos);
  bad = ParseConfigText("colour = blue\n", "");
  EXPECT_NE(bad.status().message().find("unknown key 'colour'"), std::string::npos);
}

TEST(RemoteTest, RefusesIncompleteOrMixedSettings) {
  EXPECT_FALSE(ResolveConnectionOptions(Args({}), {}).ok());
  EXPECT_FALSE(ResolveConnectionOptions(Args({"--server=a:1"}), {}).ok());
  EXPECT_FALSE(ResolveConnectionOptions(Args({"--server=a:1", "--plaintext"}), {}).ok());
  EXPECT_FALSE(ResolveConnectionOptions(
                   Args({"--server=a:1", "--plaintext", "--identity=x", "--tls-cert=c"}), {})
                   .ok());
  EXPECT_FALSE(
      ResolveConnectionOptions(
          Args({"--server=a:1", "--tls-cert=c", "--tls-key=k", "--tls-ca=ca", "--identity=x"}), {})
          .ok());
  EXPECT_FALSE(ResolveConnectionOptions(
                   Args({"--server=a:1", "--plaintext", "--identity=x", "--timeout=0"}), {})
                   .ok());
  auto o = ResolveConnectionOptions(Args({"--server=a:1", "--plaintext", "--identity=ops"}), {});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->plaintext);
  EXPECT_EQ(o->identity, "ops");
}

TEST(RemoteTest, GlobalFlagsBeforeTheCommandMoveBehindIt) {
  EXPECT_EQ(HoistGlobalFlags({"--server", "a:1", "--plaintext", "--identity=ops", "swarm", "list",
                              "--output", "json"}),
            (std::vector<std::string>{"swarm", "list", "--output", "json", "--server", "a:1",
                                      "--plaintext", "--identity=ops"}));
  EXPECT_EQ(HoistGlobalFlags({"--output", "json", "swarm", "list"}),
            (std::vector<std::string>{"swarm", "list", "--output", "json"}));
  EXPECT_EQ(HoistGlobalFlags({"swarm", "list"}), (std::vector<std::string>{"swarm", "list"}));
  EXPECT_EQ(HoistGlobalFlags({"---", "swarm"}), (std::vector<std::string>{"---", "swarm"}));
  EXPECT_EQ(HoistGlobalFlags({"--plaintext", "--timeout=3", "watch", "s"}),
            (std::vector<std::string>{"watch", "s", "--plaintext", "--timeout=3"}));
}

TEST(RemoteTest, UsageErrorsExitTwoBeforeAnyConnection) {
  unsetenv("WXPCTL_CONFIG");
  EXPECT_EQ(RunCli({"swarm", "list"}).code, 2);  // no server
  EXPECT_EQ(RunCli({"swarm"}).code, 2);
  EXPECT_EQ(RunCli({"swarm", "frobnicate"}).code, 2);
  EXPECT_EQ(RunCli({"swarm", "status", "--server=127.0.0.1:1", "--plaintext", "--identity=x"}).code,
            2);  // no NAME
  EXPECT_EQ(RunCli({"swarm", "list", "--server=127.0.0.1:1", "--plaintext", "--identity=x",
                    "--output=yaml"})
                .code,
            2);
  EXPECT_EQ(
      RunCli({"weights", "set", "s", "acc", "--server=127.0.0.1:1", "--plaintext", "--identity=x"})
          .code,
      2);
  const CliOutput help = RunCli({"swarm", "status", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("--tls-cert"), std::string::npos);
  // A server that is not there: exit 1 and a message saying where.
  const CliOutput down = RunCli(
      {"--server=127.0.0.1:1", "--plaintext", "--identity=x", "--timeout=2", "swarm", "list"});
  EXPECT_EQ(down.code, 1);
  EXPECT_NE(down.err.find("swarm list:"), std::string::npos) << down.err;
  EXPECT_NE(down.err.find("UNAVAILABLE"), std::string::npos) << down.err;
}

}  // namespace
}  // namespace wxp::admin
