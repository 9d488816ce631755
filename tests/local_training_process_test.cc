// Local training federated (SPEC 4.4): the real wxp-server and wxp-agent processes on
// loopback run a WEIGHTS swarm whose spec asks for local training. Each agent trains its
// particles in its own process (the synthetic evaluator's trainer) between move and
// evaluation; the run must equal the in-process runner with the same trainer byte for byte
// (every global-best utility and g's blob). An agent whose evaluator cannot train (an
// external command) must refuse the swarm with a clear message instead of running another
// search than the spec asks for. Agents killed with SIGKILL mid-training resume, and the run
// still equals the runner's.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "client/net/connection.h"
#include "common/adapter.h"
#include "common/runner.h"
#include "common/synthetic.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/processes.h"
#include "tests/testing/swarm_admin.h"
#include "tests/testing/synthetic_experts.h"

namespace wxp {
namespace {

namespace fs = std::filesystem;
using proc::ChildProcess;
using proc::ServerProcess;

constexpr char kHyper[] = "seed: 31 max_iterations: 8 patience: 4 pool_size: 5";
constexpr char kTraining[] = "local_training { every_k: 2 steps: 3 learning_rate: 0.2 batch: 8 }";

class LocalTrainingProcessTest : public ::testing::Test {
 protected:
  std::string BlobIdOf(const std::vector<float>& values) {
    return *proc::BlobIdOf(proc::SmallLoraSchema(), values);
  }

  void SetUp() override {
    root_ = proc::FreshDir(::testing::TempDir() + "/" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto experts = proc::SaveRandomExperts(proc::SmallLoraSchema(), 3, 2024, root_);
    ASSERT_TRUE(experts.ok()) << experts.status();
    experts_ = experts->values;
    expert_dirs_ = experts->dirs;
    optimum_path_ = root_ + "/optimum.safetensors";
    auto optimum = proc::SaveHiddenOptimum(proc::SmallLoraSchema(), experts_, 2024, optimum_path_);
    ASSERT_TRUE(optimum.ok()) << optimum.status();
    optimum_ = *optimum;
    server_ =
        std::make_unique<ServerProcess>(root_ + "/server", std::vector<std::string>{"--plaintext"});
    ASSERT_GT(server_->Start(), 0) << proc::Tail(server_->log_path());
  }

  std::unique_ptr<client::Connection> Admin() {
    return proc::ConnectAs(server_->address(), "ops", Role::kAdmin);
  }

  void CreateSwarm(const std::string& extra) {
    grpc::Status s = proc::CreateSwarm(*Admin(), proc::SyntheticSwarmSpec("swarm", kHyper, extra));
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  std::vector<std::string> AgentArgs(const std::string& name, std::vector<int> experts,
                                     const std::string& evaluator) {
    return proc::AgentArgv(server_->address(), "swarm", name, proc::Pick(expert_dirs_, experts),
                           root_ + "/" + name, {evaluator});
  }

  std::string Synthetic() { return "--synthetic_optimum=" + optimum_path_; }

  // The same swarm in process, with the same trainer over the same optimum.
  RunResult Oracle() {
    RunnerOptions o;
    o.params.seed = 31;
    o.params.max_iterations = 8;
    o.params.patience = 4;
    o.params.pool_size = 5;
    for (const auto& e : experts_) o.expert_ids.push_back(BlobIdOf(e));
    SyntheticTrainer trainer(optimum_);
    o.local_training = {2, 3, 0.2, 8};
    o.trainer = &trainer;
    SyntheticEvaluator eval(optimum_);
    auto r =
        RunSwarm(experts_, *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}}), eval, o);
    EXPECT_TRUE(r.ok()) << r.status();
    return *r;
  }

  std::string root_;
  std::vector<std::vector<float>> experts_;
  std::vector<float> optimum_;
  std::vector<std::string> expert_dirs_;
  std::string optimum_path_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(LocalTrainingProcessTest, FederatedRunWithTrainingMatchesTheInProcessRunner) {
  CreateSwarm(kTraining);
  ChildProcess a, b;
  ASSERT_TRUE(a.Start(AgentArgs("firm-a", {0, 1}, Synthetic()), root_ + "/firm-a.log"));
  ASSERT_TRUE(b.Start(AgentArgs("firm-b", {2}, Synthetic()), root_ + "/firm-b.log"));
  const int sa = a.Wait(absl::Minutes(3)), sb = b.Wait(absl::Minutes(3));
  const std::string log_a = proc::Tail(root_ + "/firm-a.log", 1 << 20);
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << log_a;
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(root_ + "/firm-b.log");

  const RunResult oracle = Oracle();
  int trained = 0;
  for (const IterationSummary& s : oracle.history) {
    trained += s.trained;
    EXPECT_EQ(s.training_failed, 0);
  }
  ASSERT_GT(trained, 0) << "the oracle never trained: the comparison would prove nothing";
  EXPECT_EQ(proc::GlobalBestHistoryOf(*Admin(), "swarm"), proc::GlobalBestHistoryOf(oracle));
  const wxp::v1::SwarmStatus status = proc::SwarmStatusOf(*Admin(), "swarm");
  EXPECT_EQ(status.state(), wxp::v1::FINISHED);
  EXPECT_EQ(status.local_training().every_k(), 2);
  EXPECT_EQ(status.global_best().utility(), oracle.best_utility);
  EXPECT_EQ(status.global_best().blob_id(), BlobIdOf(oracle.best));
  // The training ran in the agents' processes, logged per particle and summed up.
  EXPECT_NE(log_a.find("event=local_training particle="), std::string::npos) << log_a;
  EXPECT_NE(log_a.find(" trainings="), std::string::npos) << log_a;
  EXPECT_EQ(log_a.find("event=local_training_failed"), std::string::npos) << log_a;
}

// How many local trainings the agent's log (appended across restarts) shows completed.
int TrainingsLogged(const std::string& log_path) {
  const std::string log = proc::Tail(log_path, 1 << 22);
  int n = 0;
  for (size_t at = 0; (at = log.find("event=local_training particle=", at)) != std::string::npos;
       ++at) {
    ++n;
  }
  return n;
}

// Agents killed with SIGKILL in the middle of local training and restarted on the same work
// directory. Every kill lands there by construction: the agents run with the training fault
// hook (client/agent/agent_training.cc, common/fault_hook.h), which holds an armed agent
// after it wrote the trained position and before the velocity that goes with it, and
// creates its marker file; the test waits for a marker and kills that agent there. A
// restarted agent is armed again once it has completed a training, so the kills spread over
// the run. The restarted agent recomputes move and training alike: the run still equals the
// in-process runner's byte for byte, and no iteration is lost.
TEST_F(LocalTrainingProcessTest, AgentsKilledMidTrainingResumeAndMatchTheRunner) {
  CreateSwarm(kTraining);
  constexpr int kKills = 3;
  const std::string marker[] = {root_ + "/hold-training-a", root_ + "/hold-training-b"};
  auto env = [&](int i) {
    return std::vector<std::string>{"WXP_FAULT_HOLD_TRAINING_MARKER=" + marker[i]};
  };
  const std::vector<std::string> args[] = {AgentArgs("firm-a", {0, 1}, Synthetic()),
                                           AgentArgs("firm-b", {2}, Synthetic())};
  const std::string logs[] = {root_ + "/firm-a.log", root_ + "/firm-b.log"};
  ChildProcess a, b;
  ChildProcess* agents[] = {&a, &b};
  // Armed from the start: the first training of either agent holds.
  for (int i : {0, 1}) ASSERT_TRUE(agents[i]->Start(args[i], logs[i], env(i)));
  bool armed[2] = {true, true};
  int trainings_at_kill[2] = {-1, -1};
  int kills = 0;
  const absl::Time give_up = absl::Now() + absl::Minutes(5);
  while (kills < kKills && (a.Running() || b.Running()) && absl::Now() < give_up) {
    for (int i : {0, 1}) {
      if (!armed[i] && TrainingsLogged(logs[i]) > trainings_at_kill[i]) {
        ASSERT_TRUE(fs::remove(marker[i]));
        armed[i] = true;
      }
      // Both agents may hold at once: the kill past kKills is left to the disarming below.
      if (kills < kKills && armed[i] && fs::exists(marker[i])) {  // holding mid-training
        agents[i]->Kill(SIGKILL);
        ++kills;
        armed[i] = false;  // the marker stays: the restarted agent runs disarmed
        trainings_at_kill[i] = TrainingsLogged(logs[i]);
        ASSERT_TRUE(agents[i]->Start(args[i], logs[i], env(i)));
      }
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(kills, kKills) << "the agents finished before " << kKills
                           << " kills mid-training; firm-a:\n"
                           << proc::Tail(logs[0]);
  // Disarm the hooks that have not fired; an agent whose hook fired meanwhile is holding, and
  // is killed there once more.
  for (int i : {0, 1}) {
    if (!armed[i]) continue;
    const int fd = open(marker[i].c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
      close(fd);
    } else {
      agents[i]->Kill(SIGKILL);
      ++kills;
      ASSERT_TRUE(agents[i]->Start(args[i], logs[i], env(i)));
    }
  }
  const int sa = a.Wait(absl::Minutes(3)), sb = b.Wait(absl::Minutes(3));
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << proc::Tail(logs[0]);
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(logs[1]);
  std::cerr << "killed agents " << kills << " times mid-training" << std::endl;

  const RunResult oracle = Oracle();
  EXPECT_EQ(proc::GlobalBestHistoryOf(*Admin(), "swarm"), proc::GlobalBestHistoryOf(oracle));
  const wxp::v1::SwarmStatus status = proc::SwarmStatusOf(*Admin(), "swarm");
  EXPECT_EQ(status.state(), wxp::v1::FINISHED);
  EXPECT_EQ(status.global_best().utility(), oracle.best_utility);
  EXPECT_EQ(status.global_best().blob_id(), BlobIdOf(oracle.best));
  for (const std::string& log : logs) {
    EXPECT_EQ(proc::Tail(log, 1 << 22).find("event=local_training_failed"), std::string::npos)
        << proc::Tail(log);
  }
}

TEST_F(LocalTrainingProcessTest, AgentThatCannotTrainRefusesTheSwarm) {
  CreateSwarm(kTraining);
  ChildProcess a;
  ASSERT_TRUE(
      a.Start(AgentArgs("firm-a", {0, 1, 2}, "--eval_command=/bin/false"), root_ + "/firm-a.log"));
  const int sa = a.Wait(absl::Minutes(3));
  const std::string log = proc::Tail(root_ + "/firm-a.log", 1 << 20);
  ASSERT_TRUE(WIFEXITED(sa)) << log;
  EXPECT_EQ(WEXITSTATUS(sa), 1) << log;
  EXPECT_NE(log.find("asks for local training"), std::string::npos) << log;
  EXPECT_NE(log.find("cannot train"), std::string::npos) << log;
  EXPECT_NE(log.find("builtin_legal_text"), std::string::npos) << log;
  // Nothing was evaluated: the refusal came before any particle work.
  EXPECT_EQ(log.find("event=iteration"), std::string::npos) << log;
}

}  // namespace
}  // namespace wxp
