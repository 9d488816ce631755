// Metrics as an operator gets them (SPEC 11): a real Prometheus (Debian's prometheus,
// started here on loopback with its own configuration and storage in the test's directory)
// scrapes the real wxp-server's --metrics_address every second while real wxp-agents run
// a SYNC swarm to the end; then Prometheus' HTTP API must answer series whose values are
// what the swarm did: its last iteration, one accepted report per particle and iteration,
// Report RPCs answered OK, g's utility, blob bytes received and store commits. One agent
// serves its own metrics too (evaluations, reports acknowledged, bytes uploaded).
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/net/connection.h"
#include "common/adapter.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/http_json.h"
#include "tests/testing/processes.h"
#include "tests/testing/swarm_admin.h"
#include "tests/testing/synthetic_experts.h"

namespace wxp {
namespace {

namespace fs = std::filesystem;
using proc::ChildProcess;
using proc::ServerProcess;

constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr int kPoolSize = 5;

class MetricsProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kPrometheus))
        << kPrometheus << " is missing: deploy/install-deps.sh installs Debian's prometheus";
    root_ = proc::FreshDir(::testing::TempDir() + "/metrics");
    auto experts = proc::SaveRandomExperts(schema_, 3, 31, root_);
    ASSERT_TRUE(experts.ok()) << experts.status();
    expert_dirs_ = experts->dirs;
    optimum_path_ = root_ + "/optimum.safetensors";
    auto optimum = proc::SaveHiddenOptimum(schema_, experts->values, 31, optimum_path_);
    ASSERT_TRUE(optimum.ok()) << optimum.status();
    server_ = std::make_unique<ServerProcess>(
        root_ + "/server",
        std::vector<std::string>{"--plaintext", "--metrics_address=127.0.0.1:0"});
    ASSERT_GT(server_->Start(), 0) << proc::Tail(server_->log_path());
    metrics_port_ = proc::LoggedPort(*server_, "metrics_started");
    ASSERT_GT(metrics_port_, 0) << proc::Tail(server_->log_path());
  }

  void TearDown() override {
    if (prometheus_.Running()) prometheus_.Kill(SIGTERM);
    if (server_) server_->Kill(SIGTERM);
  }

  void StartPrometheus() {
    prometheus_port_ = proc::FreeLoopbackPort();
    ASSERT_GT(prometheus_port_, 0);
    agent_metrics_port_ = proc::FreeLoopbackPort();
    ASSERT_GT(agent_metrics_port_, 0);
    const std::string config = root_ + "/prometheus.yml";
    std::ofstream(config) << "global:\n"
                             "  scrape_interval: 1s\n"
                             "  scrape_timeout: 1s\n"
                             "  evaluation_interval: 1s\n"
                             "scrape_configs:\n"
                             "  - job_name: wxp-server\n"
                             "    static_configs:\n"
                             "      - targets: ['127.0.0.1:"
                          << metrics_port_
                          << "']\n"
                             "  - job_name: wxp-agent\n"
                             "    static_configs:\n"
                             "      - targets: ['127.0.0.1:"
                          << agent_metrics_port_ << "']\n";
    ASSERT_TRUE(prometheus_.Start(
        {kPrometheus, "--config.file=" + config, "--storage.tsdb.path=" + root_ + "/prometheus",
         absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port_)},
        root_ + "/prometheus.log"));
  }

  std::unique_ptr<client::Connection> Admin() {
    return proc::ConnectAs(server_->address(), "ops", Role::kAdmin);
  }

  std::vector<std::string> AgentArgs(const std::string& name, const std::vector<int>& experts) {
    return proc::AgentArgv(server_->address(), "swarm", name, proc::Pick(expert_dirs_, experts),
                           root_ + "/" + name, {"--synthetic_optimum=" + optimum_path_});
  }

  // The value of the one series `promql` selects, as Prometheus answers it now; nullopt
  // while it has none (not scraped yet) or cannot be reached (still starting).
  std::optional<double> Query(const std::string& promql) {
    std::optional<nlohmann::json> body =
        proc::GetJson(prometheus_port_, "/api/v1/query", absl::Seconds(5), "", {{"query", promql}});
    if (!body || body->value("status", "") != "success") return std::nullopt;
    const nlohmann::json& result = (*body)["data"]["result"];
    if (!result.is_array() || result.size() != 1) return std::nullopt;
    return std::stod(result[0]["value"][1].get<std::string>());
  }

  // Polls until `promql` answers a value > 0 (see AwaitValue), and returns it.
  std::optional<double> AwaitPositive(const std::string& promql) {
    std::optional<double> got;
    proc::PollUntil(
        [&] {
          got = Query(promql);
          return got && *got > 0;
        },
        absl::Seconds(90), absl::Milliseconds(200));
    return got;
  }

  // Polls until `promql` has the value `want` (Prometheus scrapes every second; the bound
  // only ends a failing run), and returns what it last answered.
  std::optional<double> AwaitValue(const std::string& promql, double want) {
    std::optional<double> got;
    proc::PollUntil(
        [&] {
          got = Query(promql);
          return got && *got == want;
        },
        absl::Seconds(90), absl::Milliseconds(200));
    return got;
  }

  Schema schema_ = proc::SmallLoraSchema();
  std::string root_, optimum_path_;
  std::vector<std::string> expert_dirs_;
  std::unique_ptr<ServerProcess> server_;
  int metrics_port_ = 0;
  int prometheus_port_ = 0;
  int agent_metrics_port_ = 0;  // firm-a's
  ChildProcess prometheus_;
};

TEST_F(MetricsProcessTest, PrometheusScrapesWhatTheSwarmDid) {
  StartPrometheus();
  // Scraping works before anything happens: the target is up.
  EXPECT_EQ(AwaitValue("up{job=\"wxp-server\"}", 1), 1) << proc::Tail(root_ + "/prometheus.log");

  const grpc::Status created = proc::CreateSwarm(
      *Admin(),
      proc::SyntheticSwarmSpec(
          "swarm", absl::StrCat("seed: 7 max_iterations: 6 patience: 6 pool_size: ", kPoolSize)));
  ASSERT_TRUE(created.ok()) << created.error_message();
  ChildProcess a, b;
  std::vector<std::string> args_a = AgentArgs("firm-a", {0, 1});
  args_a.push_back(absl::StrCat("--metrics_address=127.0.0.1:", agent_metrics_port_));
  ASSERT_TRUE(a.Start(args_a, root_ + "/firm-a.log"));
  ASSERT_TRUE(b.Start(AgentArgs("firm-b", {2}), root_ + "/firm-b.log"));
  const int sa = a.Wait(absl::Minutes(3)), sb = b.Wait(absl::Minutes(3));
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << proc::Tail(root_ + "/firm-a.log");
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(root_ + "/firm-b.log");

  wxp::v1::SwarmStatus status;
  wxp::v1::GetHistoryResponse history;
  {
    auto admin = Admin();
    ASSERT_TRUE(proc::GetSwarmStatus(*admin, "swarm", &status).ok());
    ASSERT_TRUE(proc::GetHistory(*admin, "swarm", &history).ok());
  }
  ASSERT_EQ(status.state(), wxp::v1::FINISHED);
  ASSERT_GT(status.iteration(), 0);
  // Every particle reported every iteration once, the initial evaluation (0) included.
  const int reports = kPoolSize * (status.iteration() + 1);
  int history_reports = 0;
  for (const auto& e : history.entries()) history_reports += e.reports();
  ASSERT_EQ(history_reports, reports);

  const std::string swarm = "{swarm=\"swarm\"}";
  EXPECT_EQ(AwaitValue("wxp_swarm_iteration" + swarm, status.iteration()), status.iteration());
  EXPECT_EQ(AwaitValue("wxp_swarm_state{swarm=\"swarm\",state=\"FINISHED\"}", 1), 1);
  EXPECT_EQ(AwaitValue("wxp_reports_accepted_total", reports), reports);
  EXPECT_EQ(AwaitValue("wxp_swarm_global_best_utility" + swarm, status.global_best().utility()),
            status.global_best().utility());
  EXPECT_EQ(AwaitValue("wxp_swarm_global_worst_utility" + swarm, status.global_worst().utility()),
            status.global_worst().utility());
  EXPECT_EQ(AwaitValue("wxp_swarm_step_length" + swarm, status.step_length()),
            status.step_length());
  EXPECT_EQ(AwaitValue("wxp_swarm_particles{swarm=\"swarm\",state=\"live\"}", kPoolSize),
            kPoolSize);
  // The mean of the particles' latest utilities is the last history entry's.
  const double mean = history.entries(history.entries_size() - 1).mean_utility();
  const std::optional<double> got_mean = AwaitValue("wxp_swarm_mean_utility" + swarm, mean);
  ASSERT_TRUE(got_mean.has_value());
  EXPECT_NEAR(*got_mean, mean, 1e-12 * std::max(1.0, std::abs(mean)));

  // Every accepted report was a Report RPC answered OK (repeats would add to it).
  const std::optional<double> ok_reports =
      Query("wxp_rpcs_total{service=\"wxp.v1.AgentService\",method=\"Report\",code=\"OK\"}");
  ASSERT_TRUE(ok_reports.has_value());
  const std::optional<double> duplicates = Query("wxp_reports_duplicate_total");
  ASSERT_TRUE(duplicates.has_value());
  EXPECT_EQ(*ok_reports, reports + *duplicates);
  // The latency histogram saw each of them.
  const std::optional<double> report_latencies =
      Query("sum(wxp_rpc_duration_seconds_count{method=\"Report\"})");
  ASSERT_TRUE(report_latencies.has_value());
  EXPECT_GE(*report_latencies, *ok_reports);
  const std::optional<double> p99 =
      Query("histogram_quantile(0.99, wxp_rpc_duration_seconds_bucket{method=\"Report\"})");
  ASSERT_TRUE(p99.has_value());
  EXPECT_GT(*p99, 0);
  // One round duration per closed round, the initial evaluation included.
  EXPECT_EQ(AwaitValue("wxp_round_duration_seconds_count" + swarm, status.iteration() + 1),
            status.iteration() + 1);
  // The three experts were uploaded; the store committed something.
  const std::optional<double> in = Query("wxp_blob_received_bytes_total");
  ASSERT_TRUE(in.has_value());
  EXPECT_GE(*in, 3.0 * static_cast<double>(schema_.total_params()) * 4);
  const std::optional<double> commits = Query("wxp_store_commit_batch_size_count");
  ASSERT_TRUE(commits.has_value());
  EXPECT_GT(*commits, 0);
  const std::optional<double> commit_seconds = Query("wxp_store_commit_duration_seconds_count");
  ASSERT_TRUE(commit_seconds.has_value());
  EXPECT_EQ(*commit_seconds, *commits);

  // firm-a's own metrics, scraped while it ran (it has exited: its last scraped values).
  const std::optional<double> evaluated =
      AwaitPositive("max_over_time(wxp_agent_evaluations_total{result=\"ok\"}[10m])");
  ASSERT_TRUE(evaluated.has_value()) << proc::Tail(root_ + "/prometheus.log");
  EXPECT_GT(*evaluated, 0);
  EXPECT_LE(*evaluated, reports);
  const std::optional<double> acknowledged =
      AwaitPositive("max_over_time(wxp_agent_reports_acknowledged_total[10m])");
  ASSERT_TRUE(acknowledged.has_value());
  EXPECT_GT(*acknowledged, 0);
  EXPECT_LE(*acknowledged, reports);
  // Its two experts went up at the join, before anything else.
  const std::optional<double> up =
      AwaitPositive("max_over_time(wxp_agent_uploaded_bytes_total[10m])");
  ASSERT_TRUE(up.has_value());
  EXPECT_GE(*up, 2.0 * static_cast<double>(schema_.total_params()) * 4);
  const std::optional<double> eval_seconds =
      AwaitPositive("max_over_time(wxp_agent_evaluation_duration_seconds_count[10m])");
  ASSERT_TRUE(eval_seconds.has_value());
  EXPECT_GT(*eval_seconds, 0);
}

}  // namespace
}  // namespace wxp
