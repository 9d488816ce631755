// The services over a real gRPC server on a loopback port: translation, role checks,
// revocation, and status codes as a client sees them. Identity comes from a test
// authenticator here; mTLS identity is tested with the auth library.
#include <memory>

#include "common/adapter.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/service/admin_service.h"
#include "server/service/agent_service.h"
#include "server/store/memory_store.h"

namespace wxp::server {
namespace {

// Test-only identity: metadata set by the test client. Never used by wxp-server.
absl::StatusOr<Caller> MetadataIdentity(const grpc::ServerContext& ctx) {
  const auto& md = ctx.client_metadata();
  auto id = md.find("x-test-identity");
  auto role = md.find("x-test-role");
  if (id == md.end() || role == md.end()) {
    return absl::UnauthenticatedError("no client identity");
  }
  return Caller{std::string(id->second.data(), id->second.size()),
                std::string(role->second.data(), role->second.size())};
}

class ServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Coordinator::Create({&store_, &blobs_, &clock_, 64, [](const std::string&) {}});
    ASSERT_TRUE(c.ok());
    coordinator_ = *std::move(c);
    gate_ = std::make_unique<Gatekeeper>(MetadataIdentity, &store_, &clock_);
    admin_ = std::make_unique<AdminServiceImpl>(coordinator_.get(), &store_, &blobs_, gate_.get(),
                                                &clock_);
    agent_ = std::make_unique<AgentServiceImpl>(coordinator_.get(), gate_.get(), &clock_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(admin_.get());
    builder.RegisterService(agent_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                       grpc::InsecureChannelCredentials());
    admin_stub_ = wxp::v1::AdminService::NewStub(channel);
    agent_stub_ = wxp::v1::AgentService::NewStub(channel);
  }
  void TearDown() override { server_->Shutdown(); }

  std::unique_ptr<grpc::ClientContext> As(const std::string& id, const std::string& role) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("x-test-identity", id);
    ctx->AddMetadata("x-test-role", role);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ctx;
  }

  grpc::Status Create(const std::string& who, const std::string& role,
                      wxp::v1::CreateSwarmResponse* out) {
    wxp::v1::CreateSwarmRequest req;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
        "spec { name: 's' min_experts: 2 utility { name: 'acc' weight: 1 } }", &req));
    return admin_stub_->CreateSwarm(As(who, role).get(), req, out);
  }

  store::MemoryStore store_;
  MemoryBlobs blobs_;
  FakeClock clock_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<Gatekeeper> gate_;
  std::unique_ptr<AdminServiceImpl> admin_;
  std::unique_ptr<AgentServiceImpl> agent_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<wxp::v1::AdminService::Stub> admin_stub_;
  std::unique_ptr<wxp::v1::AgentService::Stub> agent_stub_;
};

TEST_F(ServicesTest, AdminCreatesAndReadsASwarm) {
  wxp::v1::CreateSwarmResponse created;
  ASSERT_TRUE(Create("ops", "admin", &created).ok());
  EXPECT_EQ(created.state(), wxp::v1::PENDING_EXPERTS);
  EXPECT_TRUE(created.spec().hyperparameters().has_seed());
  wxp::v1::GetSwarmStatusRequest req;
  req.set_swarm("s");
  wxp::v1::SwarmStatus status;
  ASSERT_TRUE(admin_stub_->GetSwarmStatus(As("ops", "admin").get(), req, &status).ok());
  EXPECT_EQ(status.min_experts(), 2);
  req.set_swarm("missing");
  EXPECT_EQ(admin_stub_->GetSwarmStatus(As("ops", "admin").get(), req, &status).error_code(),
            grpc::StatusCode::NOT_FOUND);
  wxp::v1::CreateSwarmResponse again;
  EXPECT_EQ(Create("ops", "admin", &again).error_code(), grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(ServicesTest, RolesAreEnforced) {
  wxp::v1::CreateSwarmResponse out;
  grpc::Status s = Create("firm-a", "agent", &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("CreateSwarm needs role admin"), std::string::npos)
      << s.error_message();
  EXPECT_TRUE(store_.ListSwarms()->empty());
  grpc::ClientContext anonymous;
  wxp::v1::ListSwarmsResponse list;
  EXPECT_EQ(admin_stub_->ListSwarms(&anonymous, {}, &list).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // An admin cannot act as an agent either.
  wxp::v1::JoinRequest join;
  join.set_swarm("s");
  wxp::v1::JoinResponse joined;
  EXPECT_EQ(agent_stub_->Join(As("ops", "admin").get(), join, &joined).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(ServicesTest, RevokedClientsAreRefused) {
  wxp::v1::CreateSwarmResponse created;
  ASSERT_TRUE(Create("ops", "admin", &created).ok());
  wxp::v1::HeartbeatRequest hb;
  hb.set_swarm("s");
  wxp::v1::HeartbeatResponse hb_out;
  ASSERT_TRUE(agent_stub_->Heartbeat(As("firm-a", "agent").get(), hb, &hb_out).ok());
  EXPECT_EQ(hb_out.swarm_state(), wxp::v1::PENDING_EXPERTS);
  wxp::v1::RevokeClientRequest revoke;
  revoke.set_identity("firm-a");
  wxp::v1::ClientInfo info;
  ASSERT_TRUE(admin_stub_->RevokeClient(As("ops", "admin").get(), revoke, &info).ok());
  EXPECT_TRUE(info.revoked());
  grpc::Status s = agent_stub_->Heartbeat(As("firm-a", "agent").get(), hb, &hb_out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("revoked"), std::string::npos);
  revoke.set_identity("nobody");
  EXPECT_EQ(admin_stub_->RevokeClient(As("ops", "admin").get(), revoke, &info).error_code(),
            grpc::StatusCode::NOT_FOUND);
  wxp::v1::ListClientsResponse clients;
  ASSERT_TRUE(admin_stub_->ListClients(As("ops", "admin").get(), {}, &clients).ok());
  ASSERT_EQ(clients.clients_size(), 2);
  EXPECT_EQ(clients.clients(0).identity(), "firm-a");
  EXPECT_TRUE(clients.clients(0).revoked());
}

TEST_F(ServicesTest, AgentsJoinAndGetAssignmentsOverGrpc) {
  wxp::v1::CreateSwarmResponse created;
  ASSERT_TRUE(Create("ops", "admin", &created).ok());
  Adapter a;
  a.schema = Schema({{"m.lora_A.weight", DType::kF32, {2, 2}}});
  a.values = {1, 2, 3, 4};
  const std::string id_a = *blobs_.Put(*SerializeAdapter(a));
  a.values = {4, 3, 2, 1};
  const std::string id_b = *blobs_.Put(*SerializeAdapter(a));
  wxp::v1::GetAssignmentRequest areq;
  areq.set_swarm("s");
  wxp::v1::GetAssignmentResponse assignment;
  for (const auto& [who, id] : {std::pair{"firm-a", id_a}, std::pair{"firm-b", id_b}}) {
    wxp::v1::JoinRequest join;
    join.set_swarm("s");
    join.add_expert_blob_ids(id);
    join.set_capacity(2);
    wxp::v1::JoinResponse joined;
    ASSERT_TRUE(agent_stub_->Join(As(who, "agent").get(), join, &joined).ok());
  }
  ASSERT_TRUE(agent_stub_->GetAssignment(As("firm-a", "agent").get(), areq, &assignment).ok());
  EXPECT_EQ(assignment.status(), wxp::v1::GetAssignmentResponse::ASSIGNED);
  EXPECT_EQ(assignment.particles_size(), 2);  // its expert + one of the two children
  wxp::v1::ExportBestRequest ereq;
  ereq.set_swarm("s");
  auto ctx = As("ops", "admin");  // a stream's context must outlive the stream
  auto reader = admin_stub_->ExportBest(ctx.get(), ereq);
  wxp::v1::ExportChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace wxp::server
