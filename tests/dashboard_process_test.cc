// The web dashboard's API as an operator's browser gets it (SPEC 11): the real wxp-server
// with --dashboard on its metrics address while real wxp-agents run a SYNC swarm. During
// the run the API answers the swarm's progress (and, after a utility-weight change, both
// readings of the history); afterwards every answer equals the admin gRPC answer rendered
// the way `wxpctl ... --output json` renders it, and the history has one reading per
// closed iteration and weight version.
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <iostream>
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
#include "tests/dashboard_fixture.h"
#include "tests/testing/processes.h"
#include "tests/testing/swarm_admin.h"

namespace wxp {
namespace {

using proc::ChildProcess;

TEST_F(DashboardProcessTest, ApiFollowsALiveSwarmAndEqualsTheAdminAnswers) {
  // The page and its assets come from the server itself.
  {
    httplib::Client client("127.0.0.1", http_port_);
    httplib::Result page = client.Get("/");
    ASSERT_TRUE(page);
    EXPECT_EQ(page->status, 200);
    EXPECT_NE(page->body.find("/assets/dashboard.js"), std::string::npos);
    httplib::Result js = client.Get("/assets/dashboard.js");
    ASSERT_TRUE(js);
    EXPECT_EQ(js->status, 200);
    // Read-only, and /metrics is still there on the same listener.
    httplib::Result post = client.Post("/api/swarms", "{}", "application/json");
    ASSERT_TRUE(post);
    EXPECT_EQ(post->status, 405);
    httplib::Result metrics = client.Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("wxp_"), std::string::npos);
    httplib::Result unknown = client.Get("/api/swarms/nope");
    ASSERT_TRUE(unknown);
    EXPECT_EQ(unknown->status, 404);
  }
  const std::optional<nlohmann::json> before = Api("/api/swarms");
  ASSERT_TRUE(before.has_value());
  EXPECT_TRUE((*before)["swarms"].empty()) << *before;

  ASSERT_NO_FATAL_FAILURE(CreateSwarm("seed: 5 max_iterations: 12 patience: 12"));
  auto admin = Admin();
  ChildProcess a, b;
  ASSERT_TRUE(a.Start(AgentArgs("firm-a", {0, 1}), root_ + "/firm-a.log"));
  ASSERT_TRUE(b.Start(AgentArgs("firm-b", {2}), root_ + "/firm-b.log"));

  // While the agents run: the API follows the swarm. Once two iterations have closed, the
  // weights change (doubling the only component's weight), and the history must then hold
  // readings under both versions.
  int running_answers = 0;
  int max_history_seen = 0;
  bool weights_changed = false;
  const absl::Time give_up = absl::Now() + absl::Minutes(3);
  while ((a.Running() || b.Running()) && absl::Now() < give_up) {
    std::optional<nlohmann::json> one = Api("/api/swarms/swarm");
    ASSERT_TRUE(one.has_value());
    const nlohmann::json& status = (*one)["status"];
    const int entries = static_cast<int>((*one)["history"]["entries"].size());
    EXPECT_GE(entries, max_history_seen) << "the history never shrinks";
    max_history_seen = std::max(max_history_seen, entries);
    if (status["state"] == "RUNNING") {
      ++running_answers;
      std::optional<nlohmann::json> particles = Api("/api/swarms/swarm/particles");
      ASSERT_TRUE(particles.has_value());
      EXPECT_EQ((*particles)["particles"].size(), static_cast<size_t>(kPoolSize));
      if (!weights_changed && status["iteration"].get<int>() >= 2) {
        wxp::v1::SetUtilityWeightsRequest w;
        w.set_swarm("swarm");
        (*w.mutable_weights())[kSyntheticComponent] = 2;
        wxp::v1::UtilityWeights answer;
        grpc::Status s = admin->admin().SetUtilityWeights(admin->NewContext().get(), w, &answer);
        // The swarm may just have finished; then there is no change to show.
        if (s.ok()) weights_changed = true;
      }
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  const int sa = a.Wait(absl::Minutes(1)), sb = b.Wait(absl::Minutes(1));
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << proc::Tail(root_ + "/firm-a.log");
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(root_ + "/firm-b.log");
  std::cout << "api answers while running: " << running_answers
            << ", weights changed: " << weights_changed << std::endl;
  EXPECT_GT(running_answers, 0) << "the API never saw the swarm running";
  EXPECT_GT(max_history_seen, 0);

  // After the run: the API answers exactly what the admin service answers.
  wxp::v1::ListSwarmsResponse swarms;
  wxp::v1::SwarmStatus status;
  wxp::v1::GetHistoryResponse history;
  wxp::v1::UtilityWeights weights;
  wxp::v1::ListParticlesResponse particles;
  {
    ASSERT_TRUE(admin->admin().ListSwarms(admin->NewContext().get(), {}, &swarms).ok());
    ASSERT_TRUE(proc::GetSwarmStatus(*admin, "swarm", &status).ok());
    ASSERT_TRUE(proc::GetHistory(*admin, "swarm", &history).ok());
    wxp::v1::GetUtilityWeightsRequest wreq;
    wreq.set_swarm("swarm");
    ASSERT_TRUE(admin->admin().GetUtilityWeights(admin->NewContext().get(), wreq, &weights).ok());
    wxp::v1::ListParticlesRequest preq;
    preq.set_swarm("swarm");
    ASSERT_TRUE(admin->admin().ListParticles(admin->NewContext().get(), preq, &particles).ok());
  }
  ASSERT_EQ(status.state(), wxp::v1::FINISHED);
  const std::optional<nlohmann::json> api_swarms = Api("/api/swarms");
  const std::optional<nlohmann::json> api_one = Api("/api/swarms/swarm");
  const std::optional<nlohmann::json> api_particles = Api("/api/swarms/swarm/particles");
  ASSERT_TRUE(api_swarms && api_one && api_particles);
  EXPECT_EQ(*api_swarms, AsJson(swarms));
  EXPECT_EQ((*api_one)["status"], AsJson(status));
  EXPECT_EQ((*api_one)["history"], AsJson(history));
  EXPECT_EQ((*api_one)["weights"], AsJson(weights));
  EXPECT_EQ(*api_particles, AsJson(particles));
  ASSERT_EQ((*api_particles)["particles"].size(), static_cast<size_t>(kPoolSize));

  // One reading per closed iteration (0 included) under the current version; with a weight
  // change also the earlier version's readings, up to the iteration it changed at.
  const int version = status.utility_weight_version();
  EXPECT_EQ(version, weights_changed ? 2 : 1);
  int current = 0, earlier = 0;
  for (const nlohmann::json& e : (*api_one)["history"]["entries"]) {
    (e["utility_weight_version"] == version ? current : earlier)++;
  }
  EXPECT_EQ(current, status.iteration() + 1);
  if (weights_changed) {
    EXPECT_GE(earlier, 3);
    EXPECT_LT(earlier, current);
  } else {
    EXPECT_EQ(earlier, 0);
  }
}

}  // namespace
}  // namespace wxp
