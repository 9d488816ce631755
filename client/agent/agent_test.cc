// The agent's loop under the fake clock: no server, no real waiting.
#include "client/agent/agent.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "common/adapter.h"
#include "common/synthetic.h"
#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace wxp::agent {
namespace {

namespace fs = std::filesystem;

// A server that is not there: every call fails UNAVAILABLE at once. The agent must keep
// retrying the join with capped, jittered exponential backoff on its clock, and stop
// cleanly when asked while waiting.
TEST(AgentTest, RetriesAnUnreachableServerWithBackoffOnItsClock) {
  const std::string root = ::testing::TempDir() + "/agent_test_unreachable";
  fs::remove_all(root);
  Adapter expert;
  expert.schema = Schema({{"layer.lora_A.weight", DType::kF32, {2, 3}}});
  expert.values = MakeRandomExperts(1, 6, 1)[0];
  ASSERT_TRUE(SaveAdapterDir(expert, root + "/expert").ok());

  client::ConnectionOptions c;
  c.server_address = "127.0.0.1:1";  // nothing listens on port 1
  c.plaintext = true;
  c.identity = "firm-a";
  c.rpc_deadline = absl::Seconds(5);
  absl::StatusOr<std::unique_ptr<client::Connection>> conn =
      client::Connection::Open(c, absl::Now());
  ASSERT_TRUE(conn.ok()) << conn.status();

  FakeClock clock;
  const absl::Time start = clock.Now();
  Agent* running = nullptr;
  int retry_lines = 0;
  AgentOptions o;
  o.swarm = "swarm";
  o.expert_paths = {root + "/expert"};
  o.work_dir = root + "/work";
  o.backoff_initial = absl::Seconds(1);
  o.backoff_max = absl::Seconds(8);
  o.backoff_seed = 42;
  o.clock = &clock;
  // The agent logs a retry at attempts 1, 10, 20, ...: stop it at the 20th.
  o.log = [&](const std::string& line) {
    if (line.find("event=retry") != std::string::npos && ++retry_lines == 3) running->Stop();
  };
  absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Create(std::move(o), conn->get(), nullptr);
  ASSERT_TRUE(agent.ok()) << agent.status();
  running = agent->get();
  // A stop while the join is still being retried ends Run() with Cancelled (as before the
  // agent had any particle: there is no state to keep consistent).
  const absl::StatusOr<AgentSummary> summary = (*agent)->Run();
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kCancelled) << summary.status();

  // 19 waits before the 20th attempt; the 20th's wait is cancelled by Stop().
  const std::vector<absl::Duration> sleeps = clock.sleeps();
  ASSERT_EQ(sleeps.size(), 19u);
  absl::Duration nominal = absl::Seconds(1);
  for (absl::Duration w : sleeps) {
    EXPECT_GE(w, nominal * 0.8);
    EXPECT_LE(w, nominal * 1.2);
    nominal = std::min(nominal * 2, absl::Seconds(8));
  }
  // All of it on the fake clock: more than two minutes of backoff in no real time.
  EXPECT_GT(clock.Now() - start, absl::Minutes(2));
}

}  // namespace
}  // namespace wxp::agent
