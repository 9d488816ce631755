// A fixture for the dashboard's process tests: the real wxp-server with --dashboard on a
// loopback metrics address, experts and a synthetic optimum on disk for real wxp-agents,
// an admin connection, and the dashboard API over HTTP.
#ifndef WXP_TESTS_DASHBOARD_FIXTURE_H_
#define WXP_TESTS_DASHBOARD_FIXTURE_H_

#include <signal.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/net/connection.h"
#include "common/adapter.h"
#include "common/proto_json.h"
#include "common/synthetic.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/testing/http_json.h"
#include "tests/testing/processes.h"
#include "tests/testing/swarm_admin.h"
#include "tests/testing/synthetic_experts.h"

namespace wxp {

class DashboardProcessTest : public ::testing::Test {
 protected:
  static constexpr int kPoolSize = 5;

  void SetUp() override {
    root_ = proc::FreshDir(::testing::TempDir() + "/dashboard");
    auto experts = proc::SaveRandomExperts(schema_, 3, 41, root_);
    ASSERT_TRUE(experts.ok()) << experts.status();
    experts_ = experts->values;
    expert_dirs_ = experts->dirs;
    optimum_path_ = root_ + "/optimum.safetensors";
    auto optimum = proc::SaveHiddenOptimum(schema_, experts_, 41, optimum_path_);
    ASSERT_TRUE(optimum.ok()) << optimum.status();
    server_ = std::make_unique<proc::ServerProcess>(
        root_ + "/server",
        std::vector<std::string>{"--plaintext", "--metrics_address=127.0.0.1:0", "--dashboard"});
    ASSERT_GT(server_->Start(), 0) << proc::Tail(server_->log_path());
    http_port_ = proc::LoggedPort(*server_, "dashboard_started");
    ASSERT_GT(http_port_, 0) << proc::Tail(server_->log_path());
  }

  void TearDown() override {
    if (server_) server_->Kill(SIGTERM);
  }

  std::unique_ptr<client::Connection> Admin() {
    return proc::ConnectAs(server_->address(), "ops", Role::kAdmin);
  }

  // Creates swarm "swarm" of kPoolSize particles (SyntheticSwarmSpec) searching with
  // `search` (the other hyperparameters: seed, iterations, patience).
  void CreateSwarm(const std::string& search) {
    const grpc::Status s = proc::CreateSwarm(
        *Admin(),
        proc::SyntheticSwarmSpec("swarm", absl::StrCat(search, " pool_size: ", kPoolSize)));
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  std::vector<std::string> AgentArgs(const std::string& name, const std::vector<int>& experts) {
    return proc::AgentArgv(server_->address(), "swarm", name, proc::Pick(expert_dirs_, experts),
                           root_ + "/" + name, {"--synthetic_optimum=" + optimum_path_});
  }

  // GET `path` on the dashboard; nullopt unless it answers 200 with JSON.
  std::optional<nlohmann::json> Api(const std::string& path) {
    return proc::GetJson(http_port_, path, absl::Seconds(10), "application/json; charset=utf-8");
  }

  static nlohmann::json AsJson(const google::protobuf::Message& m) {
    return nlohmann::json::parse(ProtoJson(m));
  }

  Schema schema_ = proc::SmallLoraSchema();
  std::string root_, optimum_path_;
  std::vector<std::vector<float>> experts_;
  std::vector<std::string> expert_dirs_;
  std::unique_ptr<proc::ServerProcess> server_;
  int http_port_ = 0;
};

}  // namespace wxp

#endif  // WXP_TESTS_DASHBOARD_FIXTURE_H_
