#include "tests/testing/swarm_driver.h"

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/swarm_move.h"
#include "common/synthetic.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace wxp::proc {

namespace fs = std::filesystem;

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

Client::Client(int port, std::string identity, std::string role)
    : identity_(std::move(identity)), role_(std::move(role)) {
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  admin = wxp::v1::AdminService::NewStub(channel);
  agent = wxp::v1::AgentService::NewStub(channel);
}

std::unique_ptr<grpc::ClientContext> Client::Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("x-wxp-identity", identity_);
  ctx->AddMetadata("x-wxp-role", role_);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return ctx;
}

grpc::Status Client::Upload(const std::string& bytes) {
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

std::optional<std::string> Client::Download(const std::string& id) {
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

void Agent::Init(Client& c) {
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

bool Agent::Step(Client& c) {
  // Uploads the server asked for but did not receive (it died) go first: others wait on
  // them.
  for (auto it = pending_uploads_.begin(); it != pending_uploads_.end();) {
    if (grpc::Status s = c.Upload(it->second); !s.ok()) return Failed(s);
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
      if (grpc::Status s = c.agent->GetTargets(c.Ctx().get(), r, &t); !s.ok()) {
        return Failed(s);
      }
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
      MoveParticle({static_cast<float>(k.a()), static_cast<float>(k.b()), static_cast<float>(k.c()),
                    static_cast<float>(k.d()), static_cast<float>(k.step())},
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

bool Agent::Failed(const grpc::Status& s) {
  failures_.push_back(s);
  return true;
}

bool Agent::Report(Client& c, int id, int k, const std::vector<float>& x,
                   const std::string& blob_id, const std::string& bytes) {
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
  if (!s.ok()) {
    failures_.push_back(s);
    return false;
  }
  acknowledged_.push_back({id, k});
  if (resp.new_personal_best()) mine.p = x;
  if (resp.upload_requested()) {
    if (grpc::Status u = c.Upload(bytes); !u.ok()) {
      failures_.push_back(u);
      pending_uploads_[blob_id] = bytes;  // acknowledged report; the upload is retried
    }
  }
  return true;
}

void ExpectDurableState(store::SwarmStore& store, const std::string& dir,
                        const std::vector<const Agent*>& agents) {
  EXPECT_EQ(*store.IntegrityCheck(), "ok");
  for (const Agent* a : agents) {
    for (const auto& [particle, iteration] : a->acknowledged()) {
      EXPECT_TRUE(store.GetEvaluation("swarm", particle, iteration).ok())
          << a->name() << " lost the acknowledged report of particle " << particle << " iteration "
          << iteration;
    }
  }
  // An evaluation the store marks held has its bytes on disk and a counted reference.
  std::map<std::string, int64_t> refs;
  auto blob_rows = store.ListBlobs();
  ASSERT_TRUE(blob_rows.ok()) << blob_rows.status();
  for (const auto& b : *blob_rows) refs[b.id] = b.refcount;
  auto evals = store.ListEvaluations("swarm");
  ASSERT_TRUE(evals.ok()) << evals.status();
  for (const auto& e : *evals) {
    if (!e.blob_held) continue;
    const std::string id = e.blob_id;
    EXPECT_TRUE(fs::exists(absl::StrCat(dir, "/blobs/blobs/", id.substr(0, 2), "/", id)))
        << "particle " << e.particle_id << " iteration " << e.iteration << " is held without "
        << "its blob";
    EXPECT_GT(refs[id], 0) << "held blob " << id << " has no reference";
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

int RunKillingOnce(ServerProcess& server, int port, int kill_at, Agent& a, Agent& b) {
  for (int step = 0; step < 500; ++step) {
    if (step == kill_at) {
      server.Kill(SIGKILL);
      port = server.Start();
      if (port <= 0) {
        ADD_FAILURE() << "the server did not restart: " << Tail(server.log_path());
        return 0;
      }
    }
    Client ca(port, a.name(), "agent"), cb(port, b.name(), "agent");
    const bool a_alive = a.Step(ca);
    if (!b.Step(cb) && !a_alive) return port;
  }
  ADD_FAILURE() << "the swarm did not end in 500 steps";
  return port;
}

std::vector<float> ExpectFinishedAsTheRunner(int port,
                                             const std::vector<std::vector<float>>& experts,
                                             SyntheticEvaluator& eval, RunnerOptions options) {
  Client admin(port, "ops", "admin");
  wxp::v1::GetSwarmStatusRequest sreq;
  sreq.set_swarm("swarm");
  wxp::v1::SwarmStatus status;
  const grpc::Status got = admin.admin->GetSwarmStatus(admin.Ctx().get(), sreq, &status);
  if (!got.ok()) {
    ADD_FAILURE() << "GetSwarmStatus: " << got.error_message();
    return {};
  }
  EXPECT_EQ(status.state(), wxp::v1::FINISHED);
  for (const auto& e : experts) options.expert_ids.push_back(Sha256Hex(Serialize(e)));
  absl::StatusOr<RunResult> oracle = RunSwarm(
      experts, *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}}), eval, options);
  if (!oracle.ok()) {
    ADD_FAILURE() << "the in-process runner: " << oracle.status();
    return {};
  }
  EXPECT_EQ(status.global_best().utility(), oracle->best_utility);
  EXPECT_EQ(status.global_best().blob_id(), Sha256Hex(Serialize(oracle->best)));
  return oracle->best;
}

}  // namespace wxp::proc
