// The real wxp-server binary on a loopback port, driven over gRPC by in-test agents that do
// what wxp-agent does (upload experts, join, move locally, report, upload when asked). The
// server is killed with SIGKILL in the middle of the run and restarted on the same data
// directory; the swarm must finish with exactly the in-process runner's result. Then SIGTERM
// must stop it cleanly.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/adapter.h"
#include "common/runner.h"
#include "common/sha256.h"
#include "common/swarm_move.h"
#include "common/synthetic.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/wxp.grpc.pb.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/processes.h"

namespace wxp {
namespace {

namespace fs = std::filesystem;
constexpr int kDim = 240;

Schema TestSchema() { return Schema({{"m.lora_A.weight", DType::kF32, {12, 20}}}); }

std::string Serialize(const std::vector<float>& v) {
  Adapter a;
  a.schema = TestSchema();
  a.values = v;
  return *SerializeAdapter(a);
}

std::vector<float> Deserialize(const std::string& bytes) {
  return AdapterFromSafetensors(*SafetensorsFile::FromBytes(bytes)).values;
}

using ::wxp::proc::ServerProcess;

std::string ServerBinary() { return ::wxp::proc::Runfile("server/app/wxp-server"); }

class Client {
 public:
  Client(int port, std::string identity, std::string role)
      : identity_(std::move(identity)), role_(std::move(role)) {
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                       grpc::InsecureChannelCredentials());
    admin = wxp::v1::AdminService::NewStub(channel);
    agent = wxp::v1::AgentService::NewStub(channel);
  }
  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("x-wxp-identity", identity_);
    ctx->AddMetadata("x-wxp-role", role_);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return ctx;
  }
  grpc::Status Upload(const std::string& bytes) {
    auto ctx = Ctx();
    wxp::v1::UploadBlobResponse resp;
    auto w = agent->UploadBlob(ctx.get(), &resp);
    wxp::v1::UploadBlobRequest h;
    h.mutable_header()->set_blob_id(Sha256Hex(bytes));
    h.mutable_header()->set_total_size(bytes.size());
    w->Write(h);
    for (size_t off = 0; off < bytes.size(); off += 700) {
      wxp::v1::UploadBlobRequest c;
      c.mutable_chunk()->set_offset(off);
      c.mutable_chunk()->set_data(bytes.substr(off, 700));
      w->Write(c);
    }
    w->WritesDone();
    return w->Finish();
  }
  // nullopt when the call fails (the server may be down).
  std::optional<std::string> Download(const std::string& id) {
    auto ctx = Ctx();
    wxp::v1::DownloadBlobRequest r;
    r.set_blob_id(id);
    auto reader = agent->DownloadBlob(ctx.get(), r);
    std::string out;
    wxp::v1::DownloadBlobResponse m;
    while (reader->Read(&m)) out += m.chunk().data();
    if (!reader->Finish().ok()) return std::nullopt;
    return out;
  }
  std::unique_ptr<wxp::v1::AdminService::Stub> admin;
  std::unique_ptr<wxp::v1::AgentService::Stub> agent;

 private:
  std::string identity_, role_;
};

// A move computed and not yet acknowledged: retried verbatim until the server answers.
struct Pending {
  int iteration = 0;
  std::vector<float> x, v;
  std::string bytes;
};

struct LocalParticle {
  std::vector<float> x, v, p;
  int iteration = 0;
  bool done = false;
  std::optional<Pending> pending;
};

// One agent's particles and its step; reconnects are the caller's job (a new Client).
class Agent {
 public:
  Agent(std::string name, SyntheticEvaluator* eval) : name_(std::move(name)), eval_(eval) {}
  const std::string& name() const { return name_; }
  // Every (particle, iteration) whose report the server acknowledged.
  const std::vector<std::pair<int, int>>& acknowledged() const { return acknowledged_; }

  void Init(Client& c) {
    wxp::v1::GetAssignmentRequest r;
    r.set_swarm("swarm");
    wxp::v1::GetAssignmentResponse a;
    ASSERT_TRUE(c.agent->GetAssignment(c.Ctx().get(), r, &a).ok());
    ASSERT_EQ(a.status(), wxp::v1::GetAssignmentResponse::ASSIGNED);
    for (const auto& p : a.particles()) {
      LocalParticle& mine = particles_[p.particle_id()];
      mine.x = Deserialize(*c.Download(p.initial_position_blob_id()));
      mine.v.assign(kDim, 0.0f);
      if (p.initial_velocity().has_partner_blob_id()) {
        const auto partner = Deserialize(*c.Download(p.initial_velocity().partner_blob_id()));
        Difference(partner.data(), mine.x.data(), mine.v.data(), kDim);
      }
      mine.p = mine.x;
      ASSERT_TRUE(Report(c, p.particle_id(), 0, mine.x, p.initial_position_blob_id(), ""));
    }
  }

  // Returns false when every particle is done; RPC failures (server down) return true and
  // leave the state as it was, so the step is simply retried. A report whose answer was
  // lost is retried verbatim, as a real agent must: the server may have committed it.
  bool Step(Client& c) {
    // Uploads the server asked for but did not receive (it died) go first: others wait on
    // them.
    for (auto it = pending_uploads_.begin(); it != pending_uploads_.end();) {
      if (!c.Upload(it->second).ok()) return true;
      it = pending_uploads_.erase(it);
    }
    bool alive = false;
    for (auto& [id, mine] : particles_) {
      if (mine.done) continue;
      alive = true;
      if (!mine.pending) {
        wxp::v1::GetTargetsRequest r;
        r.set_swarm("swarm");
        r.set_particle_id(id);
        r.set_iteration(mine.iteration + 1);
        wxp::v1::GetTargetsResponse t;
        if (!c.agent->GetTargets(c.Ctx().get(), r, &t).ok()) return true;
        if (t.status() == wxp::v1::GetTargetsResponse::DONE) {
          mine.done = true;
          continue;
        }
        if (t.status() != wxp::v1::GetTargetsResponse::READY) continue;
        if (t.iteration() != mine.iteration + 1) continue;  // not expected in this test
        const auto g_bytes = c.Download(t.global_best().blob_id());
        const auto gw_bytes = c.Download(t.global_worst().blob_id());
        if (!g_bytes || !gw_bytes) return true;
        const auto g = Deserialize(*g_bytes);
        const auto gw = Deserialize(*gw_bytes);
        Pending p{t.iteration(), mine.x, mine.v, ""};
        if (t.restart()) RestartParticle(p.x.data(), p.v.data(), mine.p.data(), kDim);
        const auto& k = t.coefficients();
        MoveParticle({static_cast<float>(k.a()), static_cast<float>(k.b()),
                      static_cast<float>(k.c()), static_cast<float>(k.d()),
                      static_cast<float>(k.step())},
                     p.x.data(), p.v.data(), mine.p.data(), g.data(), gw.data(), kDim);
        p.bytes = Serialize(p.x);
        mine.pending = std::move(p);
      }
      const Pending& p = *mine.pending;
      if (!Report(c, id, p.iteration, p.x, Sha256Hex(p.bytes), p.bytes)) return true;
      mine.x = p.x;
      mine.v = p.v;
      mine.iteration = p.iteration;
      mine.pending.reset();
    }
    return alive;
  }

 private:
  bool Report(Client& c, int id, int k, const std::vector<float>& x, const std::string& blob_id,
              const std::string& bytes) {
    LocalParticle& mine = particles_[id];
    auto scores = eval_->Evaluate({id, k, x});
    wxp::v1::ReportRequest r;
    r.set_swarm("swarm");
    r.set_particle_id(id);
    r.set_iteration(k);
    r.set_position_blob_id(blob_id);
    for (const auto& [n, v] : *scores) (*r.mutable_scores())[n] = v;
    wxp::v1::ReportResponse resp;
    grpc::Status s = c.agent->Report(c.Ctx().get(), r, &resp);
    if (!s.ok()) return false;
    acknowledged_.push_back({id, k});
    if (resp.new_personal_best()) mine.p = x;
    if (resp.upload_requested() && !c.Upload(bytes).ok()) {
      pending_uploads_[blob_id] = bytes;  // acknowledged report; the upload is retried
    }
    return true;
  }

  std::string name_;
  SyntheticEvaluator* eval_;
  std::map<int, LocalParticle> particles_;
  std::vector<std::pair<int, int>> acknowledged_;
  std::map<std::string, std::string> pending_uploads_;
};

// SPEC 6 invariants on a stopped server's data directory.
void ExpectDurableState(const std::string& dir, const std::vector<const Agent*>& agents) {
  auto store = store::SqliteStore::Open({dir + "/wxp.db"});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*(*store)->IntegrityCheck(), "ok");
  for (const Agent* a : agents) {
    for (const auto& [particle, iteration] : a->acknowledged()) {
      EXPECT_TRUE((*store)->GetEvaluation("swarm", particle, iteration).ok())
          << a->name() << " lost the acknowledged report of particle " << particle
          << " iteration " << iteration;
    }
  }
  int blobs = 0;
  for (const auto& f : fs::recursive_directory_iterator(dir + "/blobs/blobs")) {
    if (!f.is_regular_file()) continue;
    const std::string name = f.path().filename().string();
    if (name.find(".tmp.") != std::string::npos) continue;  // removed at the next start
    EXPECT_EQ(*Sha256File(f.path().string()), name) << "corrupt blob";
    ++blobs;
  }
  EXPECT_GT(blobs, 0);
}

// Creates swarm "swarm" over three experts (agent b contributes the second), then both
// agents join and report their initial evaluations.
void StartSwarm(int port, const std::string& hyperparameters, const std::string& extra,
                const std::vector<std::vector<float>>& experts, Agent& a, Agent& b) {
  Client admin(port, "ops", "admin");
  wxp::v1::CreateSwarmRequest req;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      absl::StrCat("spec { name: 'swarm' min_experts: 3 ", extra, " utility { name: '",
                   kSyntheticComponent, "' weight: 1 } hyperparameters { ", hyperparameters,
                   " } }"),
      &req));
  wxp::v1::CreateSwarmResponse created;
  ASSERT_TRUE(admin.admin->CreateSwarm(admin.Ctx().get(), req, &created).ok());
  Client ca(port, "firm-a", "agent"), cb(port, "firm-b", "agent");
  for (int e = 0; e < 3; ++e) {
    Client& c = e == 1 ? cb : ca;
    ASSERT_TRUE(c.Upload(Serialize(experts[e])).ok());
    wxp::v1::JoinRequest j;
    j.set_swarm("swarm");
    j.add_expert_blob_ids(Sha256Hex(Serialize(experts[e])));
    j.set_capacity(3);
    wxp::v1::JoinResponse joined;
    ASSERT_TRUE(c.agent->Join(c.Ctx().get(), j, &joined).ok());
  }
  a.Init(ca);
  b.Init(cb);
}

TEST(ServerProcessTest, SwarmSurvivesKillNineAndMatchesTheRunner) {
  const std::string dir = ::testing::TempDir() + "/server_process";
  fs::remove_all(dir);
  ServerProcess server(dir, {"--plaintext"});
  int port = server.Start();
  ASSERT_GT(port, 0);

  const auto experts = MakeRandomExperts(3, kDim, 31);
  const auto optimum = *MakeHiddenOptimum(experts, 31, 0.0005);
  SyntheticEvaluator eval(optimum);
  Agent a("firm-a", &eval), b("firm-b", &eval);
  StartSwarm(port, "seed: 77 max_iterations: 8 patience: 3", "", experts, a, b);
  int steps = 0;
  for (bool alive = true; alive && steps < 500; ++steps) {
    if (steps == 5) {
      // kill -9 mid-run, then the same data directory again.
      server.Kill(SIGKILL);
      port = server.Start();
      ASSERT_GT(port, 0);
    }
    Client ca(port, "firm-a", "agent"), cb(port, "firm-b", "agent");
    alive = a.Step(ca);
    alive = b.Step(cb) || alive;
  }
  Client admin(port, "ops", "admin");
  wxp::v1::GetSwarmStatusRequest sreq;
  sreq.set_swarm("swarm");
  wxp::v1::SwarmStatus status;
  ASSERT_TRUE(admin.admin->GetSwarmStatus(admin.Ctx().get(), sreq, &status).ok());
  EXPECT_EQ(status.state(), wxp::v1::FINISHED);

  RunnerOptions o;
  o.params.seed = 77;
  o.params.max_iterations = 8;
  o.params.patience = 3;
  auto oracle = RunSwarm(experts, *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}}),
                         eval, o);
  ASSERT_TRUE(oracle.ok());
  EXPECT_EQ(status.global_best().utility(), oracle->best_utility);
  EXPECT_EQ(status.global_best().blob_id(), Sha256Hex(Serialize(oracle->best)));

  // Export over the wire and check it is a PEFT directory's worth of verified files.
  wxp::v1::ExportBestRequest ereq;
  ereq.set_swarm("swarm");
  auto ctx = admin.Ctx();
  auto reader = admin.admin->ExportBest(ctx.get(), ereq);
  std::map<std::string, std::string> files, digests;
  wxp::v1::ExportChunk chunk;
  while (reader->Read(&chunk)) {
    files[chunk.path()] += chunk.chunk().data();
    if (!chunk.sha256().empty()) digests[chunk.path()] = chunk.sha256();
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(files.count("adapter_model.safetensors"), 1u);
  ASSERT_EQ(files.count("adapter_config.json"), 1u);
  EXPECT_EQ(Sha256Hex(files["adapter_model.safetensors"]), digests["adapter_model.safetensors"]);
  EXPECT_EQ(Deserialize(files["adapter_model.safetensors"]), oracle->best);

  const int exit_status = server.Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(exit_status));
  EXPECT_EQ(WEXITSTATUS(exit_status), 0);
}

TEST(ServerProcessTest, RepeatedKillNineKeepsEveryAcknowledgedReport) {
  const std::string dir = ::testing::TempDir() + "/server_kills";
  fs::remove_all(dir);
  ServerProcess server(dir, {"--plaintext"});
  int port = server.Start();
  ASSERT_GT(port, 0);
  const auto experts = MakeRandomExperts(3, kDim, 41);
  SyntheticEvaluator eval(*MakeHiddenOptimum(experts, 41, 0.0005));
  Agent a("firm-a", &eval), b("firm-b", &eval);
  StartSwarm(port, "seed: 5 max_iterations: 12 patience: 6", "mode: ASYNC", experts, a, b);
  int kills = 0;
  std::atomic<bool> stop{false};
  for (int steps = 0; steps < 400; ++steps) {
    // Agent b works from a second thread while the server is killed under it, so some
    // kills land in the middle of a report or an upload.
    Client ca(port, "firm-a", "agent"), cb(port, "firm-b", "agent");
    bool alive_b = true;
    std::thread tb([&] { alive_b = b.Step(cb); });
    const bool alive_a = a.Step(ca);
    if (kills < 8) {
      std::this_thread::sleep_for(std::chrono::milliseconds(steps % 5));
      server.Kill(SIGKILL);
      tb.join();
      ++kills;
      ExpectDurableState(dir, {&a, &b});
      port = server.Start();
      ASSERT_GT(port, 0);
    } else {
      tb.join();
    }
    if (!alive_a && !alive_b) break;
  }
  EXPECT_GE(kills, 8);
  Client admin(port, "ops", "admin");
  wxp::v1::GetSwarmStatusRequest sreq;
  sreq.set_swarm("swarm");
  wxp::v1::SwarmStatus status;
  ASSERT_TRUE(admin.admin->GetSwarmStatus(admin.Ctx().get(), sreq, &status).ok());
  EXPECT_EQ(status.state(), wxp::v1::FINISHED);
  server.Kill(SIGTERM);
  ExpectDurableState(dir, {&a, &b});
}

TEST(ServerProcessTest, RefusesPlaintextBeyondLoopbackAndTlsWithoutFiles) {
  const std::string bin = ServerBinary();
  const std::string dir = ::testing::TempDir() + "/server_refusals";
  const std::string remote =
      bin + " --plaintext --listen=0.0.0.0:0 --data_dir=" + dir + " 2>/dev/null";
  EXPECT_NE(std::system(remote.c_str()), 0);
  const std::string no_tls = bin + " --listen=127.0.0.1:0 --data_dir=" + dir + " 2>/dev/null";
  EXPECT_NE(std::system(no_tls.c_str()), 0);
}

}  // namespace
}  // namespace wxp
