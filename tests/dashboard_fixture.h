// A fixture for the dashboard's process tests: the real wxp-server with --dashboard on a
// loopback metrics address, experts and a synthetic optimum on disk for real wxp-agents,
// an admin connection, and the dashboard API over HTTP.
#ifndef WXP_TESTS_DASHBOARD_FIXTURE_H_
#define WXP_TESTS_DASHBOARD_FIXTURE_H_

#include <signal.h>

#include <filesystem>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/net/connection.h"
#include "common/adapter.h"
#include "common/proto_json.h"
#include "common/synthetic.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/testing/processes.h"

namespace wxp {

class DashboardProcessTest : public ::testing::Test {
 protected:
  static constexpr int kPoolSize = 5;

  void SetUp() override {
    root_ = ::testing::TempDir() + "/dashboard";
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    const int dim = static_cast<int>(schema_.total_params());
    experts_ = MakeRandomExperts(3, dim, 41);
    Adapter optimum;
    optimum.schema = schema_;
    optimum.values = *MakeHiddenOptimum(experts_, 41, 0.0005);
    optimum_path_ = root_ + "/optimum.safetensors";
    ASSERT_TRUE(SaveSafetensors(optimum, optimum_path_).ok());
    for (int i = 0; i < 3; ++i) {
      Adapter a;
      a.schema = schema_;
      a.values = experts_[i];
      expert_dirs_.push_back(absl::StrCat(root_, "/expert", i));
      ASSERT_TRUE(SaveAdapterDir(a, expert_dirs_.back()).ok());
    }
    server_ = std::make_unique<proc::ServerProcess>(
        root_ + "/server",
        std::vector<std::string>{"--plaintext", "--metrics_address=127.0.0.1:0", "--dashboard"});
    ASSERT_GT(server_->Start(), 0) << proc::Tail(server_->log_path());
    std::smatch m;
    const std::string log = proc::Tail(server_->log_path());
    ASSERT_TRUE(std::regex_search(log, m, std::regex("event=dashboard_started .* port=([0-9]+)")))
        << log;
    http_port_ = std::stoi(m[1]);
  }

  void TearDown() override {
    if (server_) server_->Kill(SIGTERM);
  }

  std::unique_ptr<client::Connection> Admin() {
    client::ConnectionOptions o;
    o.server_address = server_->address();
    o.plaintext = true;
    o.identity = "ops";
    o.role = Role::kAdmin;
    o.rpc_deadline = absl::Seconds(10);
    return *client::Connection::Open(o, absl::Now());
  }

  std::vector<std::string> AgentArgs(const std::string& name, const std::vector<int>& experts) {
    std::vector<std::string> dirs;
    for (int e : experts) dirs.push_back(expert_dirs_[e]);
    return {proc::Runfile("client/agent/wxp-agent"),
            "--server=" + server_->address(),
            "--swarm=swarm",
            "--plaintext",
            "--identity=" + name,
            "--expert=" + absl::StrJoin(dirs, ","),
            "--capacity=3",
            "--work_dir=" + root_ + "/" + name,
            "--synthetic_optimum=" + optimum_path_};
  }

  // GET `path` on the dashboard; nullopt unless it answers 200 with JSON.
  std::optional<nlohmann::json> Api(const std::string& path) {
    httplib::Client client("127.0.0.1", http_port_);
    client.set_connection_timeout(2);
    client.set_read_timeout(10);
    httplib::Result res = client.Get(path);
    if (!res || res->status != 200) return std::nullopt;
    if (res->get_header_value("Content-Type") != "application/json; charset=utf-8") {
      return std::nullopt;
    }
    nlohmann::json body = nlohmann::json::parse(res->body, nullptr, false);
    if (body.is_discarded()) return std::nullopt;
    return body;
  }

  static nlohmann::json AsJson(const google::protobuf::Message& m) {
    return nlohmann::json::parse(ProtoJson(m));
  }

  Schema schema_{{{"base_model.model.layer.q_proj.lora_A.weight", DType::kF32, {4, 30}},
                  {"base_model.model.layer.q_proj.lora_B.weight", DType::kF32, {40, 4}}}};
  std::string root_, optimum_path_;
  std::vector<std::vector<float>> experts_;
  std::vector<std::string> expert_dirs_;
  std::unique_ptr<proc::ServerProcess> server_;
  int http_port_ = 0;
};

}  // namespace wxp

#endif  // WXP_TESTS_DASHBOARD_FIXTURE_H_
