// The transformer architecture federated: the real wxp-server and wxp-agent processes on
// loopback, firms with transformer experts, and each agent's built-in evaluator configured
// with nothing but the base directory (builtin_legal_text.base_dir): the architecture and
// sizes come from the base model file the experts' adapter_config.json names.
//  - A WEIGHTS swarm with local training runs to the end, every evaluation and training
//    succeeding (an MLP reading of the base would fail on the first candidate).
//  - So does an EXPERT_COEFFICIENTS/LORA_PRODUCT swarm (decoded candidates of rank Σ r_j).
//  - An agent whose base directory lacks its experts' base stops with a clear error.
#include <sys/wait.h>

#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/legal/evaluator.h"
#include "client/net/connection.h"
#include "common/adapter.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/testing/processes.h"
#include "tests/testing/swarm_admin.h"

namespace wxp {
namespace {

using proc::ChildProcess;
using proc::Runfile;
using proc::ServerProcess;

// Not a default configuration: the agents cannot guess it, only read it from the base file.
legal::ModelConfig SmallTransformer() {
  legal::ModelConfig c = legal::ModelConfig::Defaults(legal::Architecture::kTransformer);
  c.context = 32;
  c.embed = 32;
  c.hidden = 64;
  c.layers = 2;
  c.heads = 4;
  c.lora_rank = 4;
  c.lora_alpha = 8;
  c.pretrain_steps = 100;
  c.pretrain_batch = 128;
  return c;
}

class TransformerProcessTest : public ::testing::Test {
 protected:
  // The vendor's base and one expert per firm, shared by the tests.
  static void SetUpTestSuite() {
    shared_ = new std::string(proc::FreshDir(::testing::TempDir() + "/tfx-shared"));
    legal::LegalOptions o;
    o.work_dir = *shared_ + "/base";
    o.model = SmallTransformer();
    absl::StatusOr<legal::LegalSetup> setup = legal::LoadLegalSetup(o);
    ASSERT_TRUE(setup.ok()) << setup.status();
    int seed = 1;
    for (const char* shard : {"GPL", "MPL"}) {
      legal::FineTuneOptions ft;
      ft.steps = 30;
      ft.seed = ft.init_seed = seed++;
      absl::StatusOr<legal::LegalExpert> e =
          legal::FineTuneLegalExpert(*setup->model, setup->corpus, shard, ft);
      ASSERT_TRUE(e.ok()) << e.status();
      ASSERT_TRUE(SaveAdapterDir(e->adapter, absl::StrCat(*shared_, "/expert-", shard)).ok());
    }
  }
  static void TearDownTestSuite() { delete shared_; }

  void SetUp() override {
    root_ = proc::FreshDir(::testing::TempDir() + "/" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    server_ =
        std::make_unique<ServerProcess>(root_ + "/server", std::vector<std::string>{"--plaintext"});
    ASSERT_GT(server_->Start(), 0) << proc::Tail(server_->log_path());
    admin_ = proc::ConnectAs(server_->address(), "ops", Role::kAdmin);
    ASSERT_NE(admin_, nullptr);
  }

  void CreateSwarm(const std::string& name, int experts, const std::string& extra,
                   int pool_size = 4) {
    const grpc::Status s = proc::CreateSwarm(
        *admin_, absl::StrCat("spec { name: '", name, "' min_experts: ", experts,
                              " mode: SYNC round_deadline_seconds: 600 "
                              "utility { name: 'char_acc' weight: 1 } "
                              "hyperparameters { seed: 7 max_iterations: 3 patience: 10 "
                              "pool_size: ",
                              pool_size, " } ", extra, " }"));
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // Starts firm `name`'s wxp-agent for `swarm` with the expert of `shard`, the built-in
  // evaluator on `shard` and the base directory `base_dir`.
  void StartAgent(ChildProcess& agent, const std::string& name, const std::string& swarm,
                  const std::string& shard, const std::string& base_dir) {
    const std::string config = absl::StrCat(
        "server_address: '", server_->address(), "' plaintext: true plaintext_identity: '", name,
        "' swarm: '", swarm, "' capacity: 4 work_dir: '", root_, "/", name,
        "' builtin_legal_text { base_dir: '", base_dir, "' shard: '", shard, "' }\nexpert_paths: '",
        *shared_, "/expert-", shard, "'\n");
    const std::string path = root_ + "/" + name + ".textproto";
    ASSERT_TRUE(WriteFileAtomically(path, config).ok());
    ASSERT_TRUE(agent.Start({Runfile("client/agent/wxp-agent"), "--config=" + path},
                            root_ + "/" + name + ".log"));
  }

  // Waits for the agent to exit and returns its wait status and log.
  std::pair<int, std::string> AwaitExit(ChildProcess& agent, const std::string& name) {
    const int st = agent.Wait(absl::Minutes(10));
    return {st, proc::Tail(root_ + "/" + name + ".log", 1 << 20)};
  }

  static int SummaryCount(const std::string& log, const std::string& key) {
    int total = 0;
    const std::regex re("event=agent_summary .*" + key + "=([0-9]+)");
    for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator();
         ++it) {
      total += std::stoi((*it)[1]);
    }
    return total;
  }

  // Runs `swarm` with the two firms to the end and checks every step succeeded.
  void RunFirms(const std::string& swarm, int expected_trainings) {
    ChildProcess a, b;
    StartAgent(a, "firm-gpl", swarm, "GPL", *shared_ + "/base");
    StartAgent(b, "firm-mpl", swarm, "MPL", *shared_ + "/base");
    const auto [st_a, log_a] = AwaitExit(a, "firm-gpl");
    const auto [st_b, log_b] = AwaitExit(b, "firm-mpl");
    EXPECT_TRUE(WIFEXITED(st_a) && WEXITSTATUS(st_a) == 0) << log_a;
    EXPECT_TRUE(WIFEXITED(st_b) && WEXITSTATUS(st_b) == 0) << log_b;
    const std::string logs = log_a + log_b;
    EXPECT_EQ(logs.find("event=evaluation_failed"), std::string::npos) << logs;
    EXPECT_EQ(SummaryCount(logs, "failed_trainings"), 0) << logs;
    EXPECT_EQ(SummaryCount(logs, " trainings"), expected_trainings) << logs;

    const wxp::v1::SwarmStatus status = proc::SwarmStatusOf(*admin_, swarm);
    EXPECT_EQ(status.state(), wxp::v1::FINISHED);
    const std::vector<double> best = proc::GlobalBestHistoryOf(*admin_, swarm);
    ASSERT_EQ(best.size(), 4u);  // the initial evaluation and three iterations
    // Next-byte accuracy of a trained byte LM: far above chance, never worse than before.
    EXPECT_GT(best.front(), 0.1);
    EXPECT_GE(best.back(), best.front());
  }

  static std::string* shared_;
  std::string root_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<client::Connection> admin_;
};

std::string* TransformerProcessTest::shared_ = nullptr;

TEST_F(TransformerProcessTest, WeightSpaceSwarmWithLocalTrainingRunsOnTheNamedBase) {
  CreateSwarm("weights", 2,
              "local_training { every_k: 1 steps: 2 learning_rate: 0.005 batch: 32 }");
  RunFirms("weights", 4 * 3);  // every particle, every iteration
}

TEST_F(TransformerProcessTest, CoefficientSpaceSwarmRunsOnTheNamedBase) {
  CreateSwarm("coefficients", 2, "space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT");
  RunFirms("coefficients", 0);
}

TEST_F(TransformerProcessTest, AnAgentWithoutItsExpertsBaseStopsSayingWhy) {
  CreateSwarm("no-base", 1, "", /*pool_size=*/1);
  ChildProcess a;
  StartAgent(a, "firm-gpl", "no-base", "GPL", root_ + "/empty-base");
  const auto [st, log] = AwaitExit(a, "firm-gpl");
  EXPECT_FALSE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << log;
  EXPECT_NE(log.find("the adapters name base model wxp-legal-byte-transformer-"), std::string::npos)
      << log;
  EXPECT_NE(log.find("which is not in " + root_ + "/empty-base/legal-base-"), std::string::npos)
      << log;
}

}  // namespace
}  // namespace wxp
