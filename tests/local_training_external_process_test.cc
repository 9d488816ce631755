// Local training by the site's own command (SPEC 4.4, AgentConfig.train_command): the real
// wxp-server and real wxp-agent processes on loopback, the built-in legal model as the
// evaluator, and `wxpctl legal train` (the example train command, a third process per
// training) as the trainer.
//  - A swarm trained by the command runs to the end, and equals the same swarm trained by
//    the agents' built-in trainer, global best by global best: the command trains exactly
//    as the built-in trainer does, through files and environment variables, DP-SGD
//    included (SPEC 12), which changes the search.
//  - Commands that fail (one exits 1, one writes NaN weights) fail only their step: the
//    swarm still runs to the end, every failure reaches the server in the report, which
//    counts it in wxp_local_training_failures_total and logs it.
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/legal/evaluator.h"
#include "client/net/connection.h"
#include "common/adapter.h"
#include "common/file_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/testing/processes.h"
#include "tests/testing/swarm_admin.h"

namespace wxp {
namespace {

namespace fs = std::filesystem;
using proc::ChildProcess;
using proc::Runfile;
using proc::ServerProcess;

constexpr char kTraining[] =
    "local_training { every_k: 1 steps: 2 learning_rate: 0.005 batch: 16 }";
// The same with DP-SGD (SPEC 12): the whole run's training within ε 8, δ 1e-6 per site.
constexpr char kDpTraining[] =
    "local_training { every_k: 1 steps: 2 learning_rate: 0.005 batch: 16 dp_epsilon: 8 "
    "dp_delta: 1e-6 dp_clip_norm: 0.5 }";

class LocalTrainingExternalProcessTest : public ::testing::Test {
 protected:
  // The vendor's base and one small expert per firm, shared by the tests (pretraining is the
  // expensive part).
  static void SetUpTestSuite() {
    shared_ = new std::string(::testing::TempDir() + "/ltx-shared");
    fs::create_directories(*shared_);
    legal::LegalOptions o;
    o.work_dir = *shared_ + "/base";
    absl::StatusOr<legal::LegalSetup> setup = legal::LoadLegalSetup(o);
    ASSERT_TRUE(setup.ok()) << setup.status();
    int seed = 1;
    for (const char* shard : {"GPL", "MPL"}) {
      legal::FineTuneOptions ft;
      ft.steps = 20;
      ft.seed = ft.init_seed = seed++;
      absl::StatusOr<legal::LegalExpert> e =
          legal::FineTuneLegalExpert(*setup->model, setup->corpus, shard, ft);
      ASSERT_TRUE(e.ok()) << e.status();
      ASSERT_TRUE(SaveAdapterDir(e->adapter, absl::StrCat(*shared_, "/expert-", shard)).ok());
      if (nan_dir_ == nullptr) {
        // What a broken trainer might write: the right schema, a NaN in it.
        Adapter bad = e->adapter;
        bad.values[5] = std::nanf("");
        nan_dir_ = new std::string(*shared_ + "/nan-output");
        ASSERT_TRUE(SaveAdapterDir(bad, *nan_dir_).ok());
      }
    }
  }
  static void TearDownTestSuite() {
    delete shared_;
    delete nan_dir_;
  }

  void SetUp() override {
    root_ = proc::FreshDir(::testing::TempDir() + "/" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    server_ = std::make_unique<ServerProcess>(
        root_ + "/server",
        std::vector<std::string>{"--plaintext", "--metrics_address=127.0.0.1:0"});
    ASSERT_GT(server_->Start(), 0) << proc::Tail(server_->log_path());
    metrics_port_ = proc::LoggedPort(*server_, "metrics_started");
    ASSERT_GT(metrics_port_, 0) << proc::Tail(server_->log_path());
    admin_ = proc::ConnectAs(server_->address(), "ops", Role::kAdmin);
    ASSERT_NE(admin_, nullptr);
  }

  void CreateSwarm(const std::string& name, const char* training = kTraining) {
    const grpc::Status s = proc::CreateSwarm(
        *admin_,
        absl::StrCat("spec { name: '", name,
                     "' min_experts: 2 mode: SYNC round_deadline_seconds: 600 "
                     "utility { name: 'char_acc' weight: 1 } "
                     "hyperparameters { seed: 7 max_iterations: 3 patience: 10 pool_size: 4 } ",
                     training, " }"));
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // Writes firm `name`'s AgentConfig for `swarm` (the experts of `expert_shards`, the
  // built-in evaluator on `shard`, with `train_argv` as train_command unless empty) and
  // starts wxp-agent on it.
  void StartAgent(ChildProcess& agent, const std::string& name, const std::string& swarm,
                  const std::vector<std::string>& expert_shards, const std::string& shard,
                  const std::vector<std::string>& train_argv) {
    std::string config = absl::StrCat(
        "server_address: '", server_->address(), "' plaintext: true plaintext_identity: '", name,
        "' swarm: '", swarm, "' capacity: 4 work_dir: '", root_, "/", name,
        "' builtin_legal_text { base_dir: '", *shared_, "/base' shard: '", shard, "' }\n");
    for (const std::string& e : expert_shards) {
      absl::StrAppend(&config, "expert_paths: '", *shared_, "/expert-", e, "'\n");
    }
    if (!train_argv.empty()) {
      absl::StrAppend(&config, "train_command { timeout_seconds: 300 argv: ['",
                      absl::StrJoin(train_argv, "', '"), "'] }\n");
    }
    const std::string path = root_ + "/" + name + ".textproto";
    ASSERT_TRUE(WriteFileAtomically(path, config).ok());
    ASSERT_TRUE(agent.Start({Runfile("client/agent/wxp-agent"), "--config=" + path},
                            root_ + "/" + name + ".log"));
  }

  // `wxpctl legal train` for `shard` on the shared base: the example train command.
  std::vector<std::string> WxpctlTrain(const std::string& shard) {
    return {Runfile("client/wxpctl"), "legal",   "train", "--work_dir",
            *shared_ + "/base",       "--shard", shard};
  }

  // A fake train command: /bin/sh running `body` ("$1" is IN, "$2" OUT).
  std::vector<std::string> Script(const std::string& name, const std::string& body) {
    const std::string path = root_ + "/" + name + ".sh";
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    return {"/bin/sh", path};
  }

  // Waits for the agent to finish the swarm (exit 0) and returns its log.
  std::string AwaitDone(ChildProcess& agent, const std::string& name) {
    const int st = agent.Wait(absl::Minutes(10));
    const std::string log = proc::Tail(root_ + "/" + name + ".log", 1 << 20);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << name << ": " << log;
    return log;
  }

  wxp::v1::SwarmStatus Status(const std::string& swarm) {
    return proc::SwarmStatusOf(*admin_, swarm);
  }

  std::vector<double> GlobalBestHistory(const std::string& swarm) {
    return proc::GlobalBestHistoryOf(*admin_, swarm);
  }

  std::string Metrics() {
    httplib::Client client("127.0.0.1", metrics_port_);
    client.set_read_timeout(10);
    httplib::Result res = client.Get("/metrics");
    EXPECT_TRUE(res && res->status == 200);
    return res ? res->body : "";
  }

  // The sum of `key`=N over the agents' event=agent_summary lines (" trainings" is not
  // "failed_trainings").
  static int SummaryCount(const std::string& log, const std::string& key) {
    int total = 0;
    const std::regex re("event=agent_summary .*" + key + "=([0-9]+)");
    for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator();
         ++it) {
      total += std::stoi((*it)[1]);
    }
    return total;
  }

  static std::string* shared_;
  static std::string* nan_dir_;
  std::string root_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<client::Connection> admin_;
  int metrics_port_ = 0;
};

std::string* LocalTrainingExternalProcessTest::shared_ = nullptr;
std::string* LocalTrainingExternalProcessTest::nan_dir_ = nullptr;

// With DP local training (LocalTraining.dp_epsilon): the command gets the budget in its
// environment and trains as the built-in trainer does; a third swarm, the same without DP,
// shows the DP runs trained otherwise.
TEST_F(LocalTrainingExternalProcessTest, TrainCommandRunsTheSwarmAsTheBuiltInTrainerDoes) {
  // One agent per swarm holds every particle, so both swarms train each particle on the
  // same firm's data whatever the order agents join in.
  CreateSwarm("by-command", kDpTraining);
  CreateSwarm("built-in", kDpTraining);
  CreateSwarm("built-in-plain", kTraining);
  ChildProcess a, b, c;
  StartAgent(a, "cmd", "by-command", {"GPL", "MPL"}, "GPL", WxpctlTrain("GPL"));
  StartAgent(b, "own", "built-in", {"GPL", "MPL"}, "GPL", {});
  StartAgent(c, "plain", "built-in-plain", {"GPL", "MPL"}, "GPL", {});
  const std::string logs_cmd = AwaitDone(a, "cmd");
  const std::string logs_own = AwaitDone(b, "own");
  AwaitDone(c, "plain");
  EXPECT_EQ(Status("built-in").local_training().dp_epsilon(), 8);
  // The trained positions differ, so the first iteration's mean utility does (g may stay
  // an expert in both).
  auto mean_after_training = [&](const std::string& swarm) {
    wxp::v1::GetHistoryResponse h;
    EXPECT_TRUE(proc::GetHistory(*admin_, swarm, &h).ok());
    for (const auto& e : h.entries()) {
      if (e.iteration() == 1) return e.mean_utility();
    }
    ADD_FAILURE() << swarm << " has no iteration 1";
    return 0.0;
  };
  EXPECT_NE(mean_after_training("built-in"), mean_after_training("built-in-plain"));

  EXPECT_EQ(Status("by-command").state(), wxp::v1::FINISHED);
  EXPECT_EQ(Status("built-in").state(), wxp::v1::FINISHED);
  // Every particle trained in every iteration, by the command, without a failure.
  EXPECT_EQ(SummaryCount(logs_cmd, " trainings"), 4 * 3) << logs_cmd;
  EXPECT_EQ(SummaryCount(logs_cmd, "failed_trainings"), 0) << logs_cmd;
  EXPECT_EQ(logs_cmd.find("event=local_training_failed"), std::string::npos) << logs_cmd;
  EXPECT_EQ(SummaryCount(logs_own, " trainings"), 4 * 3) << logs_own;
  // The same search: the command trained as the built-in trainer does, bit for bit.
  const std::vector<double> by_command = GlobalBestHistory("by-command");
  EXPECT_EQ(by_command.size(), 4u);  // the initial evaluation and three iterations
  EXPECT_EQ(by_command, GlobalBestHistory("built-in"));
  EXPECT_EQ(Status("by-command").global_best().blob_id(),
            Status("built-in").global_best().blob_id());
  EXPECT_EQ(Metrics().find("wxp_local_training_failures_total{"), std::string::npos);
}

TEST_F(LocalTrainingExternalProcessTest, FailingTrainCommandsAreCountedAndTheSwarmRunsOn) {
  CreateSwarm("swarm");
  ChildProcess a, b;
  StartAgent(a, "firm-a", "swarm", {"GPL"}, "GPL",
             Script("exits", "echo 'no GPU on this node' >&2\nexit 1"));
  StartAgent(b, "firm-b", "swarm", {"MPL"}, "MPL",
             Script("nan", "mkdir -p \"$2\" && cp '" + *nan_dir_ + "'/* \"$2\"/"));
  const std::string log_a = AwaitDone(a, "firm-a");
  const std::string log_b = AwaitDone(b, "firm-b");

  const wxp::v1::SwarmStatus status = Status("swarm");
  EXPECT_EQ(status.state(), wxp::v1::FINISHED);
  EXPECT_EQ(GlobalBestHistory("swarm").size(), 4u);  // every iteration ran
  EXPECT_NE(log_a.find("event=local_training_failed"), std::string::npos) << log_a;
  EXPECT_NE(log_a.find("no GPU on this node"), std::string::npos) << log_a;
  EXPECT_NE(log_b.find("non-finite"), std::string::npos) << log_b;
  // The particles were still evaluated and reported every iteration.
  EXPECT_NE(log_a.find("event=iteration particle="), std::string::npos) << log_a;
  const int failed =
      SummaryCount(log_a, "failed_trainings") + SummaryCount(log_b, "failed_trainings");
  EXPECT_EQ(failed, 4 * 3) << log_a << log_b;
  EXPECT_EQ(SummaryCount(log_a + log_b, " trainings"), 0);

  // The server heard of each one: counted once per report, logged with the agent's reason.
  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find(
                absl::StrCat("wxp_local_training_failures_total{swarm=\"swarm\"} ", failed, "\n")),
            std::string::npos)
      << metrics;
  const std::string server_log = proc::Tail(server_->log_path(), 1 << 20);
  EXPECT_NE(server_log.find("event=local_training_failed swarm=swarm"), std::string::npos)
      << server_log;
  EXPECT_NE(server_log.find("no GPU on this node"), std::string::npos) << server_log;
  EXPECT_NE(server_log.find("agent=firm-b"), std::string::npos) << server_log;
}

}  // namespace
}  // namespace wxp
