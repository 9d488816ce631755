// What wxp-agent sends on Join: each expert's own adapter_config.json, against an
// in-process fake AgentService that records the request (no WXP server, fake clock).
#include <filesystem>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "client/agent/agent.h"
#include "common/adapter.h"
#include "common/file_util.h"
#include "common/testing/fake_clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/wxp.grpc.pb.h"

namespace wxp::agent {
namespace {

namespace fs = std::filesystem;

// Every blob is already present; Join is recorded and answered UNAVAILABLE, so the agent
// retries it and the test stops the agent there.
class RecordingAgentService final : public wxp::v1::AgentService::Service {
 public:
  grpc::Status GetUploadOffset(grpc::ServerContext*, const wxp::v1::GetUploadOffsetRequest*,
                               wxp::v1::GetUploadOffsetResponse* resp) override {
    resp->set_complete(true);
    return grpc::Status::OK;
  }
  grpc::Status Join(grpc::ServerContext*, const wxp::v1::JoinRequest* req,
                    wxp::v1::JoinResponse*) override {
    absl::MutexLock l(&mu_);
    joins_.push_back(*req);
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "recorded");
  }
  std::vector<wxp::v1::JoinRequest> joins() {
    absl::MutexLock l(&mu_);
    return joins_;
  }

 private:
  absl::Mutex mu_;
  std::vector<wxp::v1::JoinRequest> joins_ ABSL_GUARDED_BY(mu_);
};

// A PEFT directory of one LoRA module of rank `r` with lora_alpha `lora_alpha`.
std::string ExpertDir(const std::string& dir, int r, int lora_alpha, float fill) {
  Adapter a;
  a.schema = Schema({{"base_model.model.m.lora_A.weight", DType::kF32, {r, 4}},
                     {"base_model.model.m.lora_B.weight", DType::kF32, {3, r}}});
  a.values.assign(static_cast<size_t>(a.schema.total_params()), fill);
  a.config_json = "{\"peft_type\": \"LORA\", \"r\": " + std::to_string(r) +
                  ", \"lora_alpha\": " + std::to_string(lora_alpha) + "}";
  EXPECT_TRUE(SaveAdapterDir(a, dir).ok());
  return *a.config_json;
}

TEST(AgentJoinTest, SendsEachExpertsOwnConfig) {
  const std::string root = ::testing::TempDir() + "/agent_join_test";
  fs::remove_all(root);
  const std::string c1 = ExpertDir(root + "/e1", 2, 4, 0.1f);
  const std::string c2 = ExpertDir(root + "/e2", 3, 12, 0.2f);
  // A bare .safetensors file has no config.
  Adapter bare;
  bare.schema = Schema({{"base_model.model.m.lora_A.weight", DType::kF32, {1, 4}},
                        {"base_model.model.m.lora_B.weight", DType::kF32, {3, 1}}});
  bare.values.assign(static_cast<size_t>(bare.schema.total_params()), 0.3f);
  ASSERT_TRUE(WriteFileAtomically(root + "/e3.safetensors", *SerializeAdapter(bare)).ok());

  RecordingAgentService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);

  client::ConnectionOptions c;
  c.server_address = "127.0.0.1:" + std::to_string(port);
  c.plaintext = true;
  c.identity = "firm-a";
  c.rpc_deadline = absl::Seconds(30);
  absl::StatusOr<std::unique_ptr<client::Connection>> conn =
      client::Connection::Open(c, absl::Now());
  ASSERT_TRUE(conn.ok()) << conn.status();

  FakeClock clock;
  Agent* running = nullptr;
  AgentOptions o;
  o.swarm = "swarm";
  o.expert_paths = {root + "/e1", root + "/e2", root + "/e3.safetensors"};
  o.work_dir = root + "/work";
  o.clock = &clock;
  o.log = [&](const std::string& line) {
    if (line.find("event=retry") != std::string::npos) running->Stop();
  };
  absl::StatusOr<std::unique_ptr<Agent>> agent = Agent::Create(std::move(o), conn->get(), nullptr);
  ASSERT_TRUE(agent.ok()) << agent.status();
  running = agent->get();
  EXPECT_EQ((*agent)->Run().status().code(), absl::StatusCode::kCancelled);
  server->Shutdown();

  const std::vector<wxp::v1::JoinRequest> joins = service.joins();
  ASSERT_FALSE(joins.empty());
  const wxp::v1::JoinRequest& j = joins[0];
  ASSERT_EQ(j.expert_blob_ids_size(), 3);
  EXPECT_EQ(std::vector<std::string>(j.expert_adapter_configs().begin(),
                                     j.expert_adapter_configs().end()),
            (std::vector<std::string>{c1, c2, ""}));
  EXPECT_EQ(j.adapter_config_json(), c1);  // the first's, for servers without field 6
}

}  // namespace
}  // namespace wxp::agent
