// require_private_experts (SPEC 12): the agent refuses, naming the adapter, experts whose
// files record no DP training or too large an ε, before anything goes on the wire; and it
// refuses a swarm that asks for local training without DP, or with a larger ε than it
// accepts, against an in-process fake AgentService.
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "client/agent/agent.h"
#include "client/agent/candidate_evaluator.h"
#include "common/adapter.h"
#include "common/dp_record.h"
#include "common/testing/fake_clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/wxp.grpc.pb.h"

namespace wxp::agent {
namespace {

namespace fs = std::filesystem;

// A PEFT directory; with `sigma` > 0 its metadata records DP fine-tuning at that noise
// (q = 0.01, 1000 steps, δ = 1e-5), as `wxpctl legal finetune --dp-epsilon` writes it.
double WriteExpert(const std::string& dir, double sigma) {
  Adapter a;
  a.schema = Schema({{"base_model.model.m.lora_A.weight", DType::kF32, {2, 4}},
                     {"base_model.model.m.lora_B.weight", DType::kF32, {3, 2}}});
  a.values.assign(static_cast<size_t>(a.schema.total_params()), 0.1f);
  a.metadata = {{"format", "pt"}};
  double eps = 0;
  if (sigma > 0) {
    absl::StatusOr<dp::PrivacyRecord> r =
        dp::MakePrivacyRecord({{"finetune", 0.01, sigma, 1.0, 1000}}, 1e-5, 20000);
    EXPECT_TRUE(r.ok()) << r.status();
    dp::SetPrivacyRecord(*r, &a.metadata);
    eps = r->epsilon;
  }
  EXPECT_TRUE(SaveAdapterDir(a, dir).ok());
  return eps;
}

absl::Status Create(const std::string& root, std::vector<std::string> experts, bool require,
                    double max_epsilon) {
  AgentOptions o;
  o.swarm = "swarm";
  o.expert_paths = std::move(experts);
  o.work_dir = root + "/work";
  o.require_private_experts = require;
  o.max_expert_epsilon = max_epsilon;
  return Agent::Create(std::move(o), nullptr, nullptr).status();
}

TEST(AgentPrivacyTest, RefusesExpertsWithoutADpRecordOrAboveTheBudget) {
  const std::string root = ::testing::TempDir() + "/agent_privacy_experts";
  fs::remove_all(root);
  const double eps_private = WriteExpert(root + "/private", 1.0);
  const double eps_loose = WriteExpert(root + "/loose", 0.6);
  WriteExpert(root + "/plain", 0);
  ASSERT_GT(eps_private, 0);
  ASSERT_GT(eps_loose, eps_private);

  // Without the option anything goes, as before.
  EXPECT_TRUE(Create(root + "/a", {root + "/plain"}, false, 0).ok());
  EXPECT_TRUE(Create(root + "/b", {root + "/private", root + "/loose"}, true, 0).ok());
  EXPECT_TRUE(Create(root + "/c", {root + "/private"}, true, eps_private + 0.01).ok());

  absl::Status s = Create(root + "/d", {root + "/private", root + "/plain"}, true, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("expert " + root + "/plain was not trained with differential"),
            std::string::npos)
      << s;
  EXPECT_NE(s.message().find("require_private_experts"), std::string::npos) << s;
  EXPECT_FALSE(fs::exists(root + "/d/work"));  // refused before anything else

  s = Create(root + "/e", {root + "/private", root + "/loose"}, true, eps_private + 0.01);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("expert " + root + "/loose was trained with epsilon"),
            std::string::npos)
      << s;
  EXPECT_NE(s.message().find("max_expert_epsilon"), std::string::npos) << s;

  // A record that claims less than its own numbers spend is no record.
  Adapter forged = *LoadAdapter(root + "/private");
  absl::StatusOr<std::optional<dp::PrivacyRecord>> rec = dp::FindPrivacyRecord(forged.metadata);
  ASSERT_TRUE(rec.ok() && rec->has_value());
  dp::PrivacyRecord r = **rec;
  r.epsilon = 0.01;
  dp::SetPrivacyRecord(r, &forged.metadata);
  ASSERT_TRUE(SaveAdapterDir(forged, root + "/forged").ok());
  s = Create(root + "/f", {root + "/forged"}, true, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("expert " + root + "/forged: its privacy record is invalid"),
            std::string::npos)
      << s;

  EXPECT_EQ(Create(root + "/g", {root + "/private"}, true, -1).code(),
            absl::StatusCode::kInvalidArgument);
}

// Accepts uploads and the join; every assignment asks for local training (with DP when
// dp_epsilon > 0). The first answer is WAIT; with done_after_first, the later ones DONE.
class TrainingSwarmService final : public wxp::v1::AgentService::Service {
 public:
  TrainingSwarmService(double dp_epsilon = 0, bool done_after_first = false)
      : dp_epsilon_(dp_epsilon), done_after_first_(done_after_first) {}

  grpc::Status GetUploadOffset(grpc::ServerContext*, const wxp::v1::GetUploadOffsetRequest*,
                               wxp::v1::GetUploadOffsetResponse* resp) override {
    resp->set_complete(true);
    return grpc::Status::OK;
  }
  grpc::Status Join(grpc::ServerContext*, const wxp::v1::JoinRequest*,
                    wxp::v1::JoinResponse*) override {
    return grpc::Status::OK;
  }
  grpc::Status GetAssignment(grpc::ServerContext*, const wxp::v1::GetAssignmentRequest*,
                             wxp::v1::GetAssignmentResponse* resp) override {
    const bool done = done_after_first_ && calls_++ > 0;
    resp->set_status(done ? wxp::v1::GetAssignmentResponse::DONE
                          : wxp::v1::GetAssignmentResponse::WAIT);
    resp->set_retry_after_ms(100);
    resp->mutable_local_training()->set_every_k(2);
    resp->mutable_local_training()->set_steps(5);
    resp->mutable_local_training()->set_learning_rate(0.01);
    resp->mutable_local_training()->set_batch(8);
    if (dp_epsilon_ > 0) {
      resp->mutable_local_training()->set_dp_epsilon(dp_epsilon_);
      resp->mutable_local_training()->set_dp_delta(1e-5);
    }
    return grpc::Status::OK;
  }

 private:
  const double dp_epsilon_;
  const bool done_after_first_;
  std::atomic<int> calls_{0};
};

// An evaluator that can train (the agent checks that before any particle work); neither
// method runs here.
class TrainingEvaluator final : public CandidateEvaluator {
 public:
  absl::StatusOr<Scores> Evaluate(const Candidate&) override { return Scores{{"acc", 0.5}}; }
  bool CanTrain() const override { return true; }
  absl::StatusOr<std::vector<float>> Train(const TrainingRequest& request,
                                           const Candidate&) override {
    return std::vector<float>(request.params.begin(), request.params.end());
  }
};

// Runs an agent holding one private expert (σ = 1 by its record, ε well below 50) that
// requires private experts, at most `max_epsilon` (0: any), against `service`; returns how
// Run ended.
absl::Status RunPrivateAgent(const std::string& root, wxp::v1::AgentService::Service& service,
                             double max_epsilon) {
  fs::remove_all(root);
  WriteExpert(root + "/private", 1.0);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) return absl::InternalError("no server");
  client::ConnectionOptions c;
  c.server_address = "127.0.0.1:" + std::to_string(port);
  c.plaintext = true;
  c.identity = "firm-a";
  c.rpc_deadline = absl::Seconds(30);
  absl::StatusOr<std::unique_ptr<client::Connection>> conn =
      client::Connection::Open(c, absl::Now());
  if (!conn.ok()) return conn.status();
  FakeClock clock;
  AgentOptions o;
  o.swarm = "swarm";
  o.expert_paths = {root + "/private"};
  o.work_dir = root + "/work";
  o.clock = &clock;
  o.require_private_experts = true;
  o.max_expert_epsilon = max_epsilon;
  absl::StatusOr<std::unique_ptr<Agent>> agent =
      Agent::Create(std::move(o), conn->get(), std::make_unique<TrainingEvaluator>());
  if (!agent.ok()) return agent.status();
  const absl::Status s = (*agent)->Run().status();
  server->Shutdown();
  return s;
}

TEST(AgentPrivacyTest, RefusesASwarmWithLocalTrainingWithoutDp) {
  TrainingSwarmService service;
  const absl::Status s =
      RunPrivateAgent(::testing::TempDir() + "/agent_privacy_training", service, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("swarm swarm asks for local training"), std::string::npos) << s;
  EXPECT_NE(s.message().find("without differential privacy"), std::string::npos) << s;
  EXPECT_NE(s.message().find("require_private_experts"), std::string::npos) << s;
}

// DP local training (LocalTraining.dp_epsilon) within the agent's bound: it takes part (the
// swarm answers DONE on the second call, so Run ends cleanly instead of waiting forever).
TEST(AgentPrivacyTest, TakesPartInDpLocalTrainingWithinItsBound) {
  TrainingSwarmService service(/*dp_epsilon=*/2, /*done_after_first=*/true);
  const absl::Status s = RunPrivateAgent(::testing::TempDir() + "/agent_privacy_dp", service, 50);
  EXPECT_TRUE(s.ok()) << s;
}

TEST(AgentPrivacyTest, RefusesDpLocalTrainingAboveItsBound) {
  TrainingSwarmService service(/*dp_epsilon=*/80, /*done_after_first=*/true);
  const absl::Status s =
      RunPrivateAgent(::testing::TempDir() + "/agent_privacy_dp_loose", service, 50);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("spends up to epsilon 80, above this agent's max_expert_epsilon 50"),
            std::string::npos)
      << s;
}

}  // namespace
}  // namespace wxp::agent
