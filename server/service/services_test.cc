// The services over a real gRPC server on a loopback port: translation, role checks,
// revocation, and status codes as a client sees them. Identity comes from a test
// authenticator here; mTLS identity is tested with the auth library.
#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "common/adapter.h"
#include "common/sha256.h"
#include "common/testing/fake_clock.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/service/admin_service.h"
#include "server/service/agent_service.h"
#include "server/store/memory_store.h"

namespace wxp::server {
namespace {

// Test-only identity: metadata set by the test client. Never used by wxp-server.
absl::StatusOr<Identity> MetadataIdentity(const grpc::ServerContextBase& ctx) {
  const auto& md = ctx.client_metadata();
  auto id = md.find("x-test-identity");
  auto role = md.find("x-test-role");
  if (id == md.end() || role == md.end()) {
    return absl::UnauthenticatedError("no client identity");
  }
  absl::StatusOr<Role> parsed =
      ParseRole(absl::string_view(role->second.data(), role->second.size()));
  if (!parsed.ok()) return absl::UnauthenticatedError(parsed.status().message());
  return Identity{std::string(id->second.data(), id->second.size()), *parsed};
}

// What the services told their observer.
class RecordingObserver final : public ServiceObserver {
 public:
  void BlobBytesIn(uint64_t bytes) override { in += bytes; }
  void BlobBytesOut(uint64_t bytes) override { out += bytes; }
  void ReportAnswered(const wxp::v1::ReportRequest&, const grpc::Status& status,
                      const wxp::v1::ReportResponse&) override {
    absl::MutexLock lock(&mu);
    report_codes.push_back(status.error_code());
  }
  std::atomic<uint64_t> in{0}, out{0};
  absl::Mutex mu;
  std::vector<grpc::StatusCode> report_codes ABSL_GUARDED_BY(mu);
};

class ServicesTest : public ::testing::Test {
 protected:
  static constexpr int kMaxStreams = 2;

  void SetUp() override {
    const std::string root = ::testing::TempDir() + "/services_blobs";
    std::filesystem::remove_all(root);
    auto disk = DiskBlobs::Open({root, 1 << 20});
    ASSERT_TRUE(disk.ok());
    disk_ = *std::move(disk);
    auto c = Coordinator::Create({&store_, disk_.get(), &clock_, 64, [](const std::string&) {}});
    ASSERT_TRUE(c.ok());
    coordinator_ = *std::move(c);
    gate_ = std::make_unique<Gatekeeper>(MetadataIdentity, &store_, &clock_);
    admin_ = std::make_unique<AdminServiceImpl>(coordinator_.get(), &store_, disk_.get(),
                                                gate_.get(), &clock_, &streams_, &observer_);
    agent_ =
        std::make_unique<AgentServiceImpl>(coordinator_.get(), disk_.get(), gate_.get(), &clock_,
                                           /*max_chunk_bytes=*/64 << 10, &streams_, &observer_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(admin_.get());
    builder.RegisterService(agent_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials());
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

  // Uploads `bytes` in chunks of `chunk` starting at `from`, stopping after `stop_after`
  // bytes (to simulate a dropped connection). Returns the call's status.
  grpc::Status Upload(const std::string& bytes, size_t chunk, uint64_t from = 0,
                      uint64_t stop_after = ~0ull, wxp::v1::UploadBlobResponse* out = nullptr,
                      const std::string& id_override = "") {
    auto ctx = As("firm-a", "agent");
    wxp::v1::UploadBlobResponse resp;
    auto writer = agent_stub_->UploadBlob(ctx.get(), &resp);
    wxp::v1::UploadBlobRequest header;
    header.mutable_header()->set_blob_id(id_override.empty() ? Sha256Hex(bytes) : id_override);
    header.mutable_header()->set_total_size(bytes.size());
    header.mutable_header()->set_offset(from);
    writer->Write(header);
    for (uint64_t off = from; off < bytes.size() && off - from < stop_after; off += chunk) {
      wxp::v1::UploadBlobRequest c;
      c.mutable_chunk()->set_offset(off);
      c.mutable_chunk()->set_data(bytes.substr(off, chunk));
      if (!writer->Write(c)) break;
    }
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    if (out != nullptr) *out = resp;
    return s;
  }

  std::string Download(const std::string& id, uint64_t offset, grpc::Status* status) {
    auto ctx = As("firm-b", "agent");
    wxp::v1::DownloadBlobRequest req;
    req.set_blob_id(id);
    req.set_offset(offset);
    auto reader = agent_stub_->DownloadBlob(ctx.get(), req);
    std::string out;
    wxp::v1::DownloadBlobResponse msg;
    while (reader->Read(&msg)) out += msg.chunk().data();
    *status = reader->Finish();
    return out;
  }

  store::MemoryStore store_;
  StreamLimiter streams_{kMaxStreams};
  RecordingObserver observer_;
  std::unique_ptr<DiskBlobs> disk_;
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

// An auditor (SPEC 12) is admitted by the audit RPCs and by downloads (the positions it
// re-evaluates) only: every other RPC refuses it by role, before anything is recorded.
TEST_F(ServicesTest, AnAuditorIsAdmittedOnlyByTheAuditRpcsAndDownloads) {
  std::vector<grpc::Status> refused;
  wxp::v1::CreateSwarmResponse created;
  refused.push_back(Create("audit-1", "auditor", &created));
  wxp::v1::ListSwarmsResponse list;
  refused.push_back(admin_stub_->ListSwarms(As("audit-1", "auditor").get(), {}, &list));
  wxp::v1::ListClientsResponse clients;
  refused.push_back(admin_stub_->ListClients(As("audit-1", "auditor").get(), {}, &clients));
  wxp::v1::HeartbeatRequest hb;
  hb.set_swarm("s");
  wxp::v1::HeartbeatResponse hb_out;
  refused.push_back(agent_stub_->Heartbeat(As("audit-1", "auditor").get(), hb, &hb_out));
  wxp::v1::GetUploadOffsetRequest oreq;
  oreq.set_blob_id(std::string(64, 'a'));
  wxp::v1::GetUploadOffsetResponse offset;
  refused.push_back(agent_stub_->GetUploadOffset(As("audit-1", "auditor").get(), oreq, &offset));
  wxp::v1::JoinRequest join;
  join.set_swarm("s");
  wxp::v1::JoinResponse joined;
  refused.push_back(agent_stub_->Join(As("audit-1", "auditor").get(), join, &joined));
  for (const grpc::Status& s : refused) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
    EXPECT_NE(s.error_message().find("client 'audit-1' has role auditor;"), std::string::npos)
        << s.error_message();
  }
  EXPECT_EQ(store_.GetClient("audit-1").status().code(), absl::StatusCode::kNotFound);

  // Admitted: the answers are the RPCs' own (no such blob, no such swarm), not a refusal.
  wxp::v1::DownloadBlobRequest dreq;
  dreq.set_blob_id(std::string(64, 'a'));
  auto download_ctx = As("audit-1", "auditor");
  auto reader = agent_stub_->DownloadBlob(download_ctx.get(), dreq);
  wxp::v1::DownloadBlobResponse msg;
  while (reader->Read(&msg)) {
  }
  grpc::Status download = reader->Finish();
  EXPECT_EQ(download.error_code(), grpc::StatusCode::NOT_FOUND) << download.error_message();
  wxp::v1::PullAuditTaskRequest pull;
  pull.set_swarm("no-such-swarm");
  wxp::v1::PullAuditTaskResponse task;
  grpc::Status pulled = agent_stub_->PullAuditTask(As("audit-1", "auditor").get(), pull, &task);
  EXPECT_EQ(pulled.error_code(), grpc::StatusCode::NOT_FOUND) << pulled.error_message();
  // An agent may not audit.
  grpc::Status by_agent = agent_stub_->PullAuditTask(As("firm-a", "agent").get(), pull, &task);
  EXPECT_EQ(by_agent.error_code(), grpc::StatusCode::PERMISSION_DENIED) << by_agent.error_message();
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
  EXPECT_TRUE(info.has_first_seen());  // the documented fields, not only the flag
  EXPECT_TRUE(info.has_last_seen());
  EXPECT_EQ(info.role(), "agent");
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
  const std::string id_a = *disk_->Put(*SerializeAdapter(a));
  a.values = {4, 3, 2, 1};
  const std::string id_b = *disk_->Put(*SerializeAdapter(a));
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
    if (std::string(who) == "firm-b") {  // the second expert built the pool of 4
      EXPECT_EQ(joined.state(), wxp::v1::RUNNING);
      EXPECT_EQ(joined.assigned_particle_ids_size(), 2);
    } else {
      EXPECT_EQ(joined.assigned_particle_ids_size(), 0);  // pending: empty
    }
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

// GetTargets and Report run on gRPC's callback API (parsing_service.h): the whole first
// iteration over the wire, then the refusals those handlers give before and after the
// coordinator, and a write that fails.
TEST_F(ServicesTest, AnIterationGoesOverTheCallbackHandlers) {
  wxp::v1::CreateSwarmResponse created;
  ASSERT_TRUE(Create("ops", "admin", &created).ok());
  Adapter a;
  a.schema = Schema({{"m.lora_A.weight", DType::kF32, {2, 2}}});
  std::map<std::string, std::vector<wxp::v1::ParticleAssignment>> owned;
  for (const char* who : {"firm-a", "firm-b"}) {
    a.values = std::string(who) == "firm-a" ? std::vector<float>{1, 2, 3, 4}
                                            : std::vector<float>{4, 3, 2, 1};
    wxp::v1::JoinRequest join;
    join.set_swarm("s");
    join.add_expert_blob_ids(*disk_->Put(*SerializeAdapter(a)));
    join.set_capacity(2);
    wxp::v1::JoinResponse joined;
    ASSERT_TRUE(agent_stub_->Join(As(who, "agent").get(), join, &joined).ok());
  }
  double score = 0.1;
  for (const char* who : {"firm-a", "firm-b"}) {
    wxp::v1::GetAssignmentRequest areq;
    areq.set_swarm("s");
    wxp::v1::GetAssignmentResponse assignment;
    ASSERT_TRUE(agent_stub_->GetAssignment(As(who, "agent").get(), areq, &assignment).ok());
    for (const auto& p : assignment.particles()) {
      owned[who].push_back(p);
      wxp::v1::ReportRequest r;
      r.set_swarm("s");
      r.set_particle_id(p.particle_id());
      r.set_iteration(0);
      r.set_position_blob_id(p.initial_position_blob_id());
      (*r.mutable_scores())["acc"] = score += 0.1;
      wxp::v1::ReportResponse resp;
      grpc::Status s = agent_stub_->Report(As(who, "agent").get(), r, &resp);
      ASSERT_TRUE(s.ok()) << s.error_message();
      EXPECT_TRUE(resp.accepted());
      EXPECT_FALSE(resp.duplicate());
      EXPECT_NEAR(resp.utility(), score, 1e-9);
      // The same report again is acknowledged as a duplicate, not counted twice.
      ASSERT_TRUE(agent_stub_->Report(As(who, "agent").get(), r, &resp).ok());
      EXPECT_TRUE(resp.duplicate());
    }
  }
  ASSERT_EQ(owned["firm-a"].size(), 2u);
  const int mine = owned["firm-a"][0].particle_id();
  wxp::v1::GetTargetsRequest treq;
  treq.set_swarm("s");
  treq.set_particle_id(mine);
  treq.set_iteration(1);
  wxp::v1::GetTargetsResponse targets;
  grpc::Status s = agent_stub_->GetTargets(As("firm-a", "agent").get(), treq, &targets);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(targets.status(), wxp::v1::GetTargetsResponse::READY);
  EXPECT_EQ(targets.iteration(), 1);
  EXPECT_FALSE(targets.global_best().blob_id().empty());
  EXPECT_GT(targets.coefficients().step(), 0);

  // Refused before the coordinator: the wrong role, and a request that does not parse.
  EXPECT_EQ(agent_stub_->GetTargets(As("ops", "admin").get(), treq, &targets).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  wxp::v1::ReportRequest bad;
  bad.set_swarm("s\xff");
  wxp::v1::ReportResponse resp;
  s = agent_stub_->Report(As("firm-a", "agent").get(), bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("string field swarm is not valid UTF-8"), std::string::npos)
      << s.error_message();
  // Refused by the coordinator: a particle of another firm.
  treq.set_particle_id(owned["firm-b"][0].particle_id());
  EXPECT_EQ(agent_stub_->GetTargets(As("firm-a", "agent").get(), treq, &targets).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  // A report whose commit fails is answered with the store's error, not acknowledged; once
  // the store works again the same report is accepted as new.
  wxp::v1::ReportRequest r;
  r.set_swarm("s");
  r.set_particle_id(mine);
  r.set_iteration(1);
  r.set_position_blob_id(Sha256Hex("a moved position"));
  (*r.mutable_scores())["acc"] = 0.5;
  store_.FailCommitsWith(absl::ResourceExhaustedError("disk full"));
  s = agent_stub_->Report(As("firm-a", "agent").get(), r, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  store_.FailCommitsWith(absl::OkStatus());
  s = agent_stub_->Report(As("firm-a", "agent").get(), r, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.accepted());
  EXPECT_FALSE(resp.duplicate());
}

TEST_F(ServicesTest, BlobsUploadInChunksResumeAndDownload) {
  std::string bytes(300000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 31 + 7);
  const std::string id = Sha256Hex(bytes);
  // The connection drops after ~100 KB: the call fails and nothing is visible.
  EXPECT_FALSE(Upload(bytes, 32 << 10, 0, 100000).ok());
  EXPECT_FALSE(disk_->Has(id));
  auto ctx = As("firm-a", "agent");
  wxp::v1::GetUploadOffsetRequest oreq;
  oreq.set_blob_id(id);
  wxp::v1::GetUploadOffsetResponse offset;
  ASSERT_TRUE(agent_stub_->GetUploadOffset(ctx.get(), oreq, &offset).ok());
  EXPECT_EQ(offset.committed_bytes(), 4u * (32 << 10));  // whole chunks that arrived
  EXPECT_FALSE(offset.complete());
  // Resuming beyond what the server holds is refused; from the committed offset it completes.
  EXPECT_EQ(Upload(bytes, 32 << 10, offset.committed_bytes() + 32768).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  wxp::v1::UploadBlobResponse done;
  ASSERT_TRUE(Upload(bytes, 32 << 10, offset.committed_bytes(), ~0ull, &done).ok());
  EXPECT_EQ(done.committed_bytes(), bytes.size());
  EXPECT_TRUE(disk_->Has(id));
  ASSERT_TRUE(Upload(bytes, 32 << 10, 0, ~0ull, &done).ok());
  EXPECT_TRUE(done.already_present());

  grpc::Status status;
  EXPECT_EQ(Download(id, 0, &status), bytes);
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(Download(id, 250000, &status), bytes.substr(250000));
  Download(id, 400000, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  Download(std::string(64, 'f'), 0, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServicesTest, TheObserverHearsBlobBytesAndEveryReport) {
  const std::string bytes(100000, 'x');
  ASSERT_TRUE(Upload(bytes, 32 << 10).ok());
  EXPECT_EQ(observer_.in.load(), bytes.size());
  grpc::Status status;
  EXPECT_EQ(Download(Sha256Hex(bytes), 40000, &status), bytes.substr(40000));
  EXPECT_EQ(observer_.out.load(), bytes.size() - 40000);
  wxp::v1::ReportRequest req;
  req.set_swarm("nope");
  req.set_position_blob_id(std::string(64, 'a'));
  wxp::v1::ReportResponse resp;
  EXPECT_EQ(agent_stub_->Report(As("firm-a", "agent").get(), req, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(agent_stub_->Report(As("ops", "admin").get(), req, &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  absl::MutexLock lock(&observer_.mu);
  EXPECT_EQ(observer_.report_codes,
            (std::vector<grpc::StatusCode>{grpc::StatusCode::NOT_FOUND,
                                           grpc::StatusCode::PERMISSION_DENIED}));
}

TEST_F(ServicesTest, BadUploadsAreRefusedAndLeaveNothing) {
  const std::string bytes(1000, 'q');
  const std::string wrong_id = Sha256Hex("something else");
  EXPECT_EQ(Upload(bytes, 500, 0, ~0ull, nullptr, wrong_id).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // hash mismatch
  EXPECT_FALSE(disk_->Has(wrong_id));
  EXPECT_EQ(Upload(bytes, 100 << 10, 0, ~0ull, nullptr).error_code(),
            grpc::StatusCode::OK);  // 1000 bytes fit one chunk
  std::string big(2 << 20, 'b');
  EXPECT_EQ(Upload(big, 64 << 10).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  std::string mid(200 << 10, 'm');
  EXPECT_EQ(Upload(mid, 128 << 10).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);  // chunk over the 64 KiB limit
  EXPECT_FALSE(disk_->Has(Sha256Hex(mid)));
}

TEST_F(ServicesTest, EveryRpcOfBothServicesIsRegistered) {
  for (const auto& [service, paths] :
       {std::pair{wxp::v1::AgentService::service_full_name(), agent_->method_paths()},
        std::pair{wxp::v1::AdminService::service_full_name(), admin_->method_paths()}}) {
    const google::protobuf::ServiceDescriptor* d =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
    ASSERT_NE(d, nullptr);
    std::set<std::string> want;
    for (int i = 0; i < d->method_count(); ++i) {
      want.insert(absl::StrCat("/", d->full_name(), "/", d->method(i)->name()));
    }
    EXPECT_EQ(std::set<std::string>(paths.begin(), paths.end()), want);
    EXPECT_EQ(paths.size(), want.size());  // each once
  }
}

// The generated serializer only logs about a string that is not UTF-8 and sends it anyway,
// as a client in another language might: the server names the field.
TEST_F(ServicesTest, AStringThatIsNotUtf8IsInvalidArgumentNamingTheField) {
  wxp::v1::GetSwarmStatusRequest req;
  req.set_swarm("s\xff");
  wxp::v1::SwarmStatus status;
  grpc::Status s = admin_stub_->GetSwarmStatus(As("ops", "admin").get(), req, &status);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(),
            "request is not a valid wxp.v1.GetSwarmStatusRequest: string field swarm is not "
            "valid UTF-8");

  wxp::v1::UploadBlobResponse resp;
  grpc::Status upload = Upload("bytes", 5, 0, ~0ull, &resp, "\xc3(");
  EXPECT_EQ(upload.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(upload.error_message().find("string field header.blob_id is not valid UTF-8"),
            std::string::npos)
      << upload.error_message();
}

TEST_F(ServicesTest, BlobStreamsAreLimitedServerWideNotPerConnection) {
  // kMaxStreams uploads held open, each on its own connection, until the server has taken
  // their first chunk (so each handler holds its slot).
  struct Open {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<wxp::v1::AgentService::Stub> stub;
    std::unique_ptr<grpc::ClientContext> ctx;
    wxp::v1::UploadBlobResponse resp;
    std::unique_ptr<grpc::ClientWriter<wxp::v1::UploadBlobRequest>> writer;
    std::string bytes;
  };
  std::vector<std::unique_ptr<Open>> open;
  for (int i = 0; i < kMaxStreams; ++i) {
    auto o = std::make_unique<Open>();
    grpc::ChannelArguments args;
    args.SetInt("wxp-test-connection", i);  // a distinct connection per stream
    o->channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_),
                                           grpc::InsecureChannelCredentials(), args);
    o->stub = wxp::v1::AgentService::NewStub(o->channel);
    o->ctx = As("firm-a", "agent");
    o->bytes = std::string(10, static_cast<char>('a' + i));
    o->writer = o->stub->UploadBlob(o->ctx.get(), &o->resp);
    wxp::v1::UploadBlobRequest m;
    m.mutable_header()->set_blob_id(Sha256Hex(o->bytes));
    m.mutable_header()->set_total_size(o->bytes.size());
    ASSERT_TRUE(o->writer->Write(m));
    m.mutable_chunk()->set_offset(0);
    m.mutable_chunk()->set_data(o->bytes.substr(0, 4));
    ASSERT_TRUE(o->writer->Write(m));
    wxp::v1::GetUploadOffsetRequest q;
    q.set_blob_id(Sha256Hex(o->bytes));
    wxp::v1::GetUploadOffsetResponse progress;
    while (progress.committed_bytes() < 4) {
      ASSERT_TRUE(agent_stub_->GetUploadOffset(As("firm-a", "agent").get(), q, &progress).ok());
    }
    open.push_back(std::move(o));
  }
  EXPECT_EQ(streams_.open(), kMaxStreams);
  grpc::Status refused;
  Download(Sha256Hex("anything"), 0, &refused);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(refused.error_message().find("max_concurrent_streams"), std::string::npos);

  for (auto& o : open) {
    wxp::v1::UploadBlobRequest m;
    m.mutable_chunk()->set_offset(4);
    m.mutable_chunk()->set_data(o->bytes.substr(4));
    ASSERT_TRUE(o->writer->Write(m));
    o->writer->WritesDone();
    ASSERT_TRUE(o->writer->Finish().ok());
  }
  EXPECT_EQ(streams_.open(), 0);
  grpc::Status ok;
  EXPECT_EQ(Download(Sha256Hex(open[0]->bytes), 0, &ok), open[0]->bytes);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
}

}  // namespace
}  // namespace wxp::server
