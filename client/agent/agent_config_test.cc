#include "client/agent/agent_config.h"

#include <filesystem>

#include "common/certs.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace wxp::agent {
namespace {

std::string WriteConfig(const std::string& name, const std::string& text) {
  const std::string dir = ::testing::TempDir() + "/agent_config_test";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name;
  EXPECT_TRUE(WriteFileAtomically(path, text).ok());
  return path;
}

TEST(AgentConfigTest, FileBecomesOptionsWithPathsRelativeToIt) {
  AgentFlags flags;
  flags.config = WriteConfig("a.textproto", R"pb(
    server_address: "wxp.example:7443"
    tls { cert: "certs/firm-a.crt" key: "certs/firm-a.key" ca: "/etc/wxp/ca.crt" }
    swarm: "legal"
    expert_paths: "experts/a"
    expert_paths: "/abs/b"
    capacity: 3
    work_dir: "work"
    synthetic { optimum_path: "opt.safetensors" }
    reconnect_initial_seconds: 2
    reconnect_max_seconds: 1
    rpc_deadline_seconds: 7
    heartbeat_interval_seconds: 11
  )pb");
  absl::StatusOr<AgentSetup> s = ResolveAgentSetup(flags, "host-1");
  ASSERT_TRUE(s.ok()) << s.status();
  const std::string dir = ::testing::TempDir() + "/agent_config_test";
  EXPECT_EQ(s->connection.server_address, "wxp.example:7443");
  EXPECT_FALSE(s->connection.plaintext);
  EXPECT_EQ(s->connection.tls.cert_file, dir + "/certs/firm-a.crt");
  EXPECT_EQ(s->connection.tls.key_file, dir + "/certs/firm-a.key");
  EXPECT_EQ(s->connection.tls.ca_file, "/etc/wxp/ca.crt");
  EXPECT_EQ(s->connection.identity, "host-1");
  EXPECT_EQ(s->connection.role, Role::kAgent);
  EXPECT_EQ(s->connection.rpc_deadline, absl::Seconds(7));
  EXPECT_EQ(s->agent.swarm, "legal");
  EXPECT_EQ(s->agent.expert_paths, (std::vector<std::string>{dir + "/experts/a", "/abs/b"}));
  EXPECT_EQ(s->agent.capacity, 3);
  EXPECT_EQ(s->agent.work_dir, dir + "/work");
  EXPECT_EQ(s->agent.backoff_initial, absl::Seconds(2));
  EXPECT_EQ(s->agent.backoff_max, absl::Seconds(2));  // raised to the initial backoff
  EXPECT_EQ(s->agent.heartbeat_interval, absl::Seconds(11));
  EXPECT_EQ(s->config.synthetic().optimum_path(), dir + "/opt.safetensors");
}

TEST(AgentConfigTest, MetricsSettingsComeFromTheFileOrTheFlags) {
  AgentFlags flags;
  flags.config = WriteConfig("m.textproto", R"pb(
    server_address: "wxp.example:7443"
    plaintext: true
    swarm: "s"
    expert_paths: "e"
    work_dir: "w"
    metrics_address: "127.0.0.1:9465"
  )pb");
  absl::StatusOr<AgentSetup> s = ResolveAgentSetup(flags, "host-1");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->config.metrics_address(), "127.0.0.1:9465");
  EXPECT_FALSE(s->config.metrics_allow_remote());
  flags.metrics_address = "0.0.0.0:9465";
  flags.metrics_allow_remote = true;
  s = ResolveAgentSetup(flags, "host-1");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->config.metrics_address(), "0.0.0.0:9465");
  EXPECT_TRUE(s->config.metrics_allow_remote());
}

TEST(AgentConfigTest, TrainCommandIsReadAndCheckedAtStartUp) {
  const std::string base = R"pb(
    server_address: "wxp.example:7443"
    plaintext: true
    swarm: "s"
    expert_paths: "e"
    work_dir: "w"
    builtin_legal_text { shard: "GPL" }
  )pb";
  AgentFlags flags;
  flags.config = WriteConfig("t.textproto", base + R"pb(
    train_command {
      argv: [ "wxpctl", "legal", "train", "--shard", "GPL" ]
      timeout_seconds: 120
      env { key: "OMP_NUM_THREADS" value: "2" }
    }
  )pb");
  absl::StatusOr<AgentSetup> s = ResolveAgentSetup(flags, "host-1");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->config.has_train_command());
  const auto& t = s->config.train_command();
  EXPECT_EQ(std::vector<std::string>(t.argv().begin(), t.argv().end()),
            (std::vector<std::string>{"wxpctl", "legal", "train", "--shard", "GPL"}));
  EXPECT_EQ(t.timeout_seconds(), 120);
  EXPECT_EQ(t.env().at("OMP_NUM_THREADS"), "2");
  EXPECT_EQ(s->config.builtin_legal_text().shard(), "GPL");  // the evaluator stays

  const std::pair<const char*, const char*> bad[] = {
      {"train_command { timeout_seconds: 5 }", "needs a program"},
      {"train_command { argv: \"\" }", "needs a program"},
      {"train_command { argv: \"t\" timeout_seconds: -1 }", "timeout_seconds"},
      {"train_command { argv: \"t\" env { key: \"A=B\" value: \"1\" } }", "'A=B'"},
      {"train_command { argv: \"t\" steps: 3 }", "steps"},  // unknown field: a typo
  };
  for (const auto& [text, want] : bad) {
    flags.config = WriteConfig("bad.textproto", base + text);
    absl::StatusOr<AgentSetup> r = ResolveAgentSetup(flags, "host-1");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(r.status().message().find(want), std::string::npos) << r.status();
  }
}

TEST(AgentConfigTest, FlagsOverrideTheFileAndDefaultsFillTheRest) {
  AgentFlags flags;
  flags.config = WriteConfig("b.textproto", R"pb(
    server_address: "old:1"
    swarm: "old"
    work_dir: "/w"
    capacity: 2
    expert_paths: "/e/old"
    external_command { argv: "old" }
  )pb");
  flags.server = "new:2";
  flags.swarm = "new";
  flags.plaintext = true;
  flags.identity = "firm-b";
  flags.experts = {"/e/1", "/e/2"};
  flags.eval_command = "python3  eval.py --fast";
  flags.eval_timeout_seconds = 30;
  absl::StatusOr<AgentSetup> s = ResolveAgentSetup(flags, "host-1");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->connection.server_address, "new:2");
  EXPECT_TRUE(s->connection.plaintext);
  EXPECT_EQ(s->connection.identity, "firm-b");
  EXPECT_EQ(s->connection.rpc_deadline, absl::Seconds(30));  // ConnectionOptions' default
  EXPECT_EQ(s->agent.swarm, "new");
  EXPECT_EQ(s->agent.capacity, 2);
  EXPECT_EQ(s->agent.expert_paths, (std::vector<std::string>{"/e/1", "/e/2"}));
  EXPECT_EQ(s->agent.backoff_initial, AgentOptions().backoff_initial);
  const auto& argv = s->config.external_command().argv();
  EXPECT_EQ(std::vector<std::string>(argv.begin(), argv.end()),
            (std::vector<std::string>{"python3", "eval.py", "--fast"}));
  EXPECT_EQ(s->config.external_command().timeout_seconds(), 30);

  // Flags alone suffice.
  AgentFlags only;
  only.server = "h:1";
  only.swarm = "s";
  only.work_dir = "/w";
  s = ResolveAgentSetup(only, "host-1");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->agent.capacity, 1);
}

// SPEC 12: the auditor role, configured (plaintext: sent as metadata) or, with TLS, read
// from the certificate, which a configured role may not contradict.
TEST(AgentConfigTest, RoleIsConfiguredOrTheCertificates) {
  AgentFlags flags;
  flags.server = "localhost:1";
  flags.swarm = "s";
  flags.work_dir = ::testing::TempDir() + "/agent_config_role";
  flags.synthetic_optimum = "opt.safetensors";
  flags.plaintext = true;
  absl::StatusOr<AgentSetup> s = ResolveAgentSetup(flags, "h");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->role, Role::kAgent);
  EXPECT_EQ(s->connection.role, Role::kAgent);
  flags.role = "auditor";
  s = ResolveAgentSetup(flags, "h");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->role, Role::kAuditor);
  EXPECT_EQ(s->connection.role, Role::kAuditor);
  flags.role = "admin";
  EXPECT_NE(ResolveAgentSetup(flags, "h").status().message().find("agent or auditor"),
            std::string::npos);

  const std::string dir = ::testing::TempDir() + "/agent_config_certs";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(InitCa(dir + "/ca").ok());
  ASSERT_TRUE(IssueCertificate(dir + "/ca", {Role::kAuditor, "vendor"}, dir).ok());
  flags.plaintext = false;
  flags.tls_cert = dir + "/vendor.crt";
  flags.tls_key = dir + "/vendor.key";
  flags.tls_ca = dir + "/ca.crt";
  flags.role = "";
  s = ResolveAgentSetup(flags, "h");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->role, Role::kAuditor);  // the certificate's
  flags.role = "agent";
  EXPECT_NE(ResolveAgentSetup(flags, "h").status().message().find("contradicts"),
            std::string::npos);
}

TEST(AgentConfigTest, RefusalsNameTheProblem) {
  auto error = [](const AgentFlags& f) { return ResolveAgentSetup(f, "h").status(); };
  AgentFlags f;
  f.server = "h:1";
  f.swarm = "s";
  f.work_dir = "/w";
  ASSERT_TRUE(error(f).ok());

  AgentFlags no_server = f;
  no_server.server.clear();
  EXPECT_EQ(error(no_server).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(error(no_server).message().find("--server"), std::string::npos);
  AgentFlags no_swarm = f;
  no_swarm.swarm.clear();
  EXPECT_NE(error(no_swarm).message().find("--swarm"), std::string::npos);
  AgentFlags no_dir = f;
  no_dir.work_dir.clear();
  EXPECT_NE(error(no_dir).message().find("--work_dir"), std::string::npos);
  AgentFlags negative = f;
  negative.capacity = -1;
  EXPECT_EQ(error(negative).code(), absl::StatusCode::kInvalidArgument);

  AgentFlags bad_file = f;
  bad_file.config = WriteConfig("bad.textproto", "swarm: \"s\"\ncolour: \"red\"\n");
  const absl::Status parsed = error(bad_file);
  EXPECT_EQ(parsed.code(), absl::StatusCode::kInvalidArgument) << parsed;
  EXPECT_NE(parsed.message().find("bad.textproto"), std::string::npos) << parsed;
  EXPECT_NE(parsed.message().find("agent_config.proto"), std::string::npos) << parsed;
  AgentFlags bad_duration = f;
  bad_duration.config = WriteConfig("neg.textproto", "reconnect_max_seconds: -1");
  EXPECT_EQ(error(bad_duration).code(), absl::StatusCode::kInvalidArgument);
  AgentFlags missing = f;
  missing.config = ::testing::TempDir() + "/absent.textproto";
  EXPECT_EQ(error(missing).code(), absl::StatusCode::kNotFound);
}

TEST(AgentConfigTest, PrivacyRequirementReachesTheAgentAndIsChecked) {
  const std::string base = R"pb(
    server_address: "wxp.example:7443"
    plaintext: true
    swarm: "legal"
    expert_paths: "e"
    work_dir: "w"
    synthetic {}
  )pb";
  AgentFlags flags;
  flags.config =
      WriteConfig("p1.textproto", base + "require_private_experts: true max_expert_epsilon: 8");
  absl::StatusOr<AgentSetup> s = ResolveAgentSetup(flags, "host");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->agent.require_private_experts);
  EXPECT_EQ(s->agent.max_expert_epsilon, 8);
  flags.config = WriteConfig("p2.textproto", base);
  s = ResolveAgentSetup(flags, "host");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->agent.require_private_experts);  // off by default
  EXPECT_EQ(s->agent.max_expert_epsilon, 0);
  flags.config =
      WriteConfig("p3.textproto", base + "require_private_experts: true max_expert_epsilon: -1");
  EXPECT_EQ(ResolveAgentSetup(flags, "host").status().code(), absl::StatusCode::kInvalidArgument);
  flags.config = WriteConfig("p4.textproto", base + "max_expert_epsilon: 4");  // alone: no check
  s = ResolveAgentSetup(flags, "host");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("needs require_private_experts"), std::string::npos)
      << s.status();
}

}  // namespace
}  // namespace wxp::agent
