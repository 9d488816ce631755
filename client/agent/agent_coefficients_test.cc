// What wxp-agent puts on the wire in an EXPERT_COEFFICIENTS swarm, against an in-process
// fake AgentService (no WXP server, fake clock): targets name g, g_w and p_i by alpha alone
// and the agent neither needs their blob ids nor downloads anything; its reports carry
// alpha, no position_blob_id and the short key "<particle_id>:<iteration>".
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/agent/agent.h"
#include "client/agent/candidate_evaluator.h"
#include "common/adapter.h"
#include "common/alpha_blob.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/testing/fake_clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/wxp.grpc.pb.h"

namespace wxp::agent {
namespace {

namespace fs = std::filesystem;

const std::vector<float> kX0 = {1, 0};  // the particle's initial position (expert 0)
const std::vector<float> kG = {0, 1};   // g: expert 1
const std::vector<float> kGw = {1, 0};  // g_w

// A swarm of one particle, owned by the caller, in a space of the caller's two experts:
// iteration 1 is READY, iteration 2 DONE. Records reports and download attempts.
class CoefficientSwarmService final : public wxp::v1::AgentService::Service {
 public:
  // `ids_in_targets`: also set blob_id beside alpha in the targets, as servers built before
  // alpha alone named positions did; `wrong_id`: set it to an id that is not alpha's.
  CoefficientSwarmService(std::vector<std::string> experts, std::vector<std::string> configs,
                          bool ids_in_targets, bool wrong_id = false)
      : experts_(std::move(experts)),
        configs_(std::move(configs)),
        ids_in_targets_(ids_in_targets),
        wrong_id_(wrong_id) {}

  grpc::Status GetUploadOffset(grpc::ServerContext*, const wxp::v1::GetUploadOffsetRequest*,
                               wxp::v1::GetUploadOffsetResponse* resp) override {
    resp->set_complete(true);
    return grpc::Status::OK;
  }
  grpc::Status Join(grpc::ServerContext*, const wxp::v1::JoinRequest*,
                    wxp::v1::JoinResponse* resp) override {
    resp->set_state(wxp::v1::RUNNING);
    return grpc::Status::OK;
  }
  grpc::Status GetAssignment(grpc::ServerContext*, const wxp::v1::GetAssignmentRequest*,
                             wxp::v1::GetAssignmentResponse* resp) override {
    resp->set_status(wxp::v1::GetAssignmentResponse::ASSIGNED);
    resp->set_swarm_state(wxp::v1::RUNNING);
    resp->set_mode(wxp::v1::SYNC);
    resp->set_space(wxp::v1::EXPERT_COEFFICIENTS);
    resp->set_decoder(wxp::v1::LORA_PRODUCT);
    for (size_t i = 0; i < experts_.size(); ++i) {
      resp->add_expert_blob_ids(experts_[i]);
      resp->add_expert_adapter_configs(configs_[i]);
    }
    auto* p = resp->add_particles();
    p->set_particle_id(0);
    p->set_initial_position_blob_id(*AlphaBlobId(kX0));
    p->mutable_initial_alpha()->Assign(kX0.begin(), kX0.end());
    p->mutable_initial_velocity()->set_zero(true);
    p->set_last_reported_iteration(-1);
    return grpc::Status::OK;
  }
  grpc::Status GetTargets(grpc::ServerContext*, const wxp::v1::GetTargetsRequest* req,
                          wxp::v1::GetTargetsResponse* resp) override {
    resp->set_swarm_state(wxp::v1::RUNNING);
    resp->set_utility_weight_version(1);
    if (req->iteration() > 1) {
      resp->set_status(wxp::v1::GetTargetsResponse::DONE);
      resp->set_swarm_state(wxp::v1::FINISHED);
      return grpc::Status::OK;
    }
    resp->set_status(wxp::v1::GetTargetsResponse::READY);
    resp->set_iteration(1);
    auto* c = resp->mutable_coefficients();
    c->set_a(0);
    c->set_b(0);
    c->set_c(1);
    c->set_d(0);
    c->set_step(0.5);
    auto ref = [&](wxp::v1::PositionRef* r, int particle, const std::vector<float>& alpha) {
      r->set_particle_id(particle);
      r->set_iteration(0);
      r->set_utility(0.5);
      r->mutable_alpha()->Assign(alpha.begin(), alpha.end());
      if (ids_in_targets_) r->set_blob_id(*AlphaBlobId(wrong_id_ ? kG : alpha));
    };
    ref(resp->mutable_global_best(), 1, kG);
    ref(resp->mutable_global_worst(), 0, kGw);
    ref(resp->mutable_personal_best(), 0, kX0);
    return grpc::Status::OK;
  }
  grpc::Status Report(grpc::ServerContext*, const wxp::v1::ReportRequest* req,
                      wxp::v1::ReportResponse* resp) override {
    absl::MutexLock l(&mu_);
    reports_.push_back(*req);
    resp->set_accepted(true);
    resp->set_utility(0.5);
    resp->set_new_personal_best(true);
    return grpc::Status::OK;
  }
  grpc::Status DownloadBlob(grpc::ServerContext*, const wxp::v1::DownloadBlobRequest* req,
                            grpc::ServerWriter<wxp::v1::DownloadBlobResponse>*) override {
    absl::MutexLock l(&mu_);
    downloads_.push_back(req->blob_id());
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "this test serves no blobs");
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const wxp::v1::HeartbeatRequest*,
                         wxp::v1::HeartbeatResponse*) override {
    return grpc::Status::OK;
  }

  std::vector<wxp::v1::ReportRequest> reports() {
    absl::MutexLock l(&mu_);
    return reports_;
  }
  std::vector<std::string> downloads() {
    absl::MutexLock l(&mu_);
    return downloads_;
  }

 private:
  const std::vector<std::string> experts_, configs_;
  const bool ids_in_targets_, wrong_id_;
  absl::Mutex mu_;
  std::vector<wxp::v1::ReportRequest> reports_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> downloads_ ABSL_GUARDED_BY(mu_);
};

class ConstantEvaluator final : public CandidateEvaluator {
 public:
  absl::StatusOr<Scores> Evaluate(const Candidate&) override { return Scores{{"acc", 0.5}}; }
};

// A PEFT directory of one LoRA module (in 4, out 3, rank 2) filled from `fill`.
std::string ExpertDir(const std::string& dir, float fill) {
  Adapter a;
  a.schema = Schema({{"base_model.model.m.lora_A.weight", DType::kF32, {2, 4}},
                     {"base_model.model.m.lora_B.weight", DType::kF32, {3, 2}}});
  a.values.assign(static_cast<size_t>(a.schema.total_params()), fill);
  for (size_t i = 0; i < a.values.size(); ++i) a.values[i] += 0.01f * static_cast<float>(i);
  a.config_json = "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4}";
  EXPECT_TRUE(SaveAdapterDir(a, dir).ok());
  return *a.config_json;
}

struct RunResult {
  absl::Status status;
  std::vector<wxp::v1::ReportRequest> reports;
  std::vector<std::string> downloads;
};

// Runs an agent with two experts against the fake until the swarm is DONE.
RunResult RunAgent(const std::string& name, bool ids_in_targets, bool wrong_id = false) {
  const std::string root = ::testing::TempDir() + "/" + name;
  fs::remove_all(root);
  std::vector<std::string> ids, configs;
  for (int e = 0; e < 2; ++e) {
    const std::string dir = absl::StrCat(root, "/e", e);
    configs.push_back(ExpertDir(dir, 0.1f * static_cast<float>(e + 1)));
    ids.push_back(*Sha256File(dir + "/" + kPeftWeightsFile));
  }
  CoefficientSwarmService service(ids, configs, ids_in_targets, wrong_id);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  EXPECT_NE(server, nullptr);

  client::ConnectionOptions c;
  c.server_address = absl::StrCat("127.0.0.1:", port);
  c.plaintext = true;
  c.identity = "firm-a";
  c.rpc_deadline = absl::Seconds(30);
  absl::StatusOr<std::unique_ptr<client::Connection>> conn =
      client::Connection::Open(c, absl::Now());
  EXPECT_TRUE(conn.ok()) << conn.status();

  FakeClock clock;
  AgentOptions o;
  o.swarm = "swarm";
  o.expert_paths = {root + "/e0", root + "/e1"};
  o.work_dir = root + "/work";
  o.clock = &clock;
  o.heartbeat_interval = absl::Hours(1);
  o.log = [](const std::string&) {};
  RunResult out;
  absl::StatusOr<std::unique_ptr<Agent>> agent =
      Agent::Create(std::move(o), conn->get(), std::make_unique<ConstantEvaluator>());
  if (!agent.ok()) {
    out.status = agent.status();
  } else {
    out.status = (*agent)->Run().status();
  }
  server->Shutdown();
  out.reports = service.reports();
  out.downloads = service.downloads();
  return out;
}

std::vector<float> Alpha(const google::protobuf::RepeatedField<float>& alpha) {
  return {alpha.begin(), alpha.end()};
}

TEST(AgentCoefficientsTest, MovesByAlphaAloneAndReportsWithoutIds) {
  const RunResult r = RunAgent("agent_coefficients_alpha_only", /*ids_in_targets=*/false);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.downloads.empty());  // its own experts and the inline alphas are all it needs
  ASSERT_EQ(r.reports.size(), 2u);
  for (int k = 0; k < 2; ++k) {
    const wxp::v1::ReportRequest& q = r.reports[k];
    EXPECT_EQ(q.iteration(), k);
    EXPECT_EQ(q.position_blob_id(), "") << k;
    EXPECT_EQ(q.idempotency_key(), absl::StrCat("0:", k));
  }
  EXPECT_EQ(Alpha(r.reports[0].position_alpha()), kX0);
  // v <- c (g - x) = (-1, 1), x <- x + 0.5 v: halfway toward g, computed from its alpha.
  EXPECT_EQ(Alpha(r.reports[1].position_alpha()), (std::vector<float>{0.5f, 0.5f}));
}

// A server that still sends blob_id beside alpha gets the same moves and reports.
TEST(AgentCoefficientsTest, AcceptsIdsBesideAlpha) {
  const RunResult r = RunAgent("agent_coefficients_with_ids", /*ids_in_targets=*/true);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.downloads.empty());
  ASSERT_EQ(r.reports.size(), 2u);
  EXPECT_EQ(r.reports[1].position_blob_id(), "");
  EXPECT_EQ(Alpha(r.reports[1].position_alpha()), (std::vector<float>{0.5f, 0.5f}));
}

// An id beside alpha that is not alpha's is corruption, not something to move with.
TEST(AgentCoefficientsTest, RefusesAnIdThatIsNotAlphas) {
  const RunResult r =
      RunAgent("agent_coefficients_wrong_id", /*ids_in_targets=*/true, /*wrong_id=*/true);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
  ASSERT_EQ(r.reports.size(), 1u);  // the initial evaluation only
}

}  // namespace
}  // namespace wxp::agent
