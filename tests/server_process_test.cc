// The real wxp-server binary on a loopback port, driven over gRPC by in-test agents that do
// what wxp-agent does (upload experts, join, move locally, report, upload when asked). The
// server is killed with SIGKILL in the middle of the run and restarted on the same data
// directory; the swarm must finish with exactly the in-process runner's result. Then SIGTERM
// must stop it cleanly.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/adapter.h"
#include "common/certs.h"
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
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
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
  // Every failed write (report, upload, targets) since the last call, as the server answered.
  std::vector<grpc::Status> TakeFailures() { return std::exchange(failures_, {}); }

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
        MoveParticle(
            {static_cast<float>(k.a()), static_cast<float>(k.b()), static_cast<float>(k.c()),
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

 private:
  bool Failed(const grpc::Status& s) {
    failures_.push_back(s);
    return true;
  }

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

  std::string name_;
  SyntheticEvaluator* eval_;
  std::map<int, LocalParticle> particles_;
  std::vector<std::pair<int, int>> acknowledged_;
  std::map<std::string, std::string> pending_uploads_;
  std::vector<grpc::Status> failures_;
};

// SPEC 6 invariants on a stopped server's data directory.
void ExpectDurableState(const std::string& dir, const std::vector<const Agent*>& agents) {
  auto store = store::SqliteStore::Open({dir + "/wxp.db"});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*(*store)->IntegrityCheck(), "ok");
  for (const Agent* a : agents) {
    for (const auto& [particle, iteration] : a->acknowledged()) {
      EXPECT_TRUE((*store)->GetEvaluation("swarm", particle, iteration).ok())
          << a->name() << " lost the acknowledged report of particle " << particle << " iteration "
          << iteration;
    }
  }
  // An evaluation the store marks held has its bytes on disk and a counted reference.
  std::map<std::string, int64_t> refs;
  auto blob_rows = (*store)->ListBlobs();
  ASSERT_TRUE(blob_rows.ok()) << blob_rows.status();
  for (const auto& b : *blob_rows) refs[b.id] = b.refcount;
  auto evals = (*store)->ListEvaluations("swarm");
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
  for (const auto& e : experts) o.expert_ids.push_back(Sha256Hex(Serialize(e)));
  auto oracle =
      RunSwarm(experts, *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}}), eval, o);
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

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

// SPEC 10: kill -9 at random points, repeated, with the SPEC 6 invariants checked after each.
// CI kills 8 times; the full run sets WXP_FAULT_SERVER_KILLS (e.g. 25) and optionally
// WXP_FAULT_SEED (see the test's BUILD entry for the command).
TEST(ServerProcessTest, RepeatedKillNineKeepsEveryAcknowledgedReport) {
  const int target_kills = EnvInt("WXP_FAULT_SERVER_KILLS", 8);
  const int seed = EnvInt("WXP_FAULT_SEED", 1);
  std::cerr << "server kills: " << target_kills << ", seed " << seed << std::endl;
  const std::string dir = ::testing::TempDir() + "/server_kills";
  fs::remove_all(dir);
  ServerProcess server(dir, {"--plaintext"});
  int port = server.Start();
  ASSERT_GT(port, 0);
  const auto experts = MakeRandomExperts(3, kDim, 41);
  SyntheticEvaluator eval(*MakeHiddenOptimum(experts, 41, 0.0005));
  Agent a("firm-a", &eval), b("firm-b", &eval);
  // An agent step advances each particle by at most one iteration, so the swarm outlasts
  // the kills; patience is no shorter so that it cannot end the run first.
  const int iterations = std::max(12, target_kills + 4);
  StartSwarm(port, absl::StrCat("seed: 5 max_iterations: ", iterations, " patience: ", iterations),
             "mode: ASYNC", experts, a, b);
  std::mt19937 rng(seed);
  int kills = 0, mid_step = 0;
  for (int steps = 0; steps < 40 * iterations; ++steps) {
    // Both agents work from their own threads while the server is killed under them after
    // a random delay, so kills land anywhere: between calls, mid-report, mid-upload, before
    // or after a commit, or when they are idle.
    Client ca(port, "firm-a", "agent"), cb(port, "firm-b", "agent");
    bool alive_a = true, alive_b = true;
    std::atomic<int> stepping{2};
    std::thread ta([&] {
      alive_a = a.Step(ca);
      --stepping;
    });
    std::thread tb([&] {
      alive_b = b.Step(cb);
      --stepping;
    });
    if (kills < target_kills) {
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 30000));
      mid_step += stepping.load() > 0;
      server.Kill(SIGKILL);
      ta.join();
      tb.join();
      ++kills;
      ExpectDurableState(dir, {&a, &b});
      port = server.Start();
      ASSERT_GT(port, 0) << "restart " << kills << ": " << ::wxp::proc::Tail(server.log_path());
    } else {
      ta.join();
      tb.join();
    }
    if (!alive_a && !alive_b) break;
    if (HasFailure()) break;
  }
  EXPECT_EQ(kills, target_kills);
  std::cerr << kills << " kills, " << mid_step << " of them while an agent was mid-step; "
            << a.acknowledged().size() + b.acknowledged().size() << " reports acknowledged"
            << std::endl;
  EXPECT_GT(mid_step, 0);
  Client admin(port, "ops", "admin");
  wxp::v1::GetSwarmStatusRequest sreq;
  sreq.set_swarm("swarm");
  wxp::v1::SwarmStatus status;
  ASSERT_TRUE(admin.admin->GetSwarmStatus(admin.Ctx().get(), sreq, &status).ok());
  EXPECT_EQ(status.state(), wxp::v1::FINISHED);
  EXPECT_EQ(status.iteration(), iterations);
  server.Kill(SIGTERM);
  ExpectDurableState(dir, {&a, &b});
}

// A small tmpfs mounted for one test (root or CAP_SYS_ADMIN needed), lazily unmounted.
class TmpfsMount {
 public:
  TmpfsMount(std::string path, size_t bytes) : path_(std::move(path)) {
    fs::create_directories(path_);
    const std::string opts = absl::StrCat("size=", bytes, ",mode=0700");
    if (::mount("tmpfs", path_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  std::string path_;
  bool mounted_ = false;
  std::string error_;
};

// Fills the filesystem holding `path` until a write fails with ENOSPC; the bytes written.
uint64_t FillDisk(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  uint64_t total = 0;
  const std::string block(64 << 10, 'x');
  for (size_t size = block.size(); size > 0; size /= 2) {
    for (;;) {
      const ssize_t n = ::write(fd, block.data(), size);
      if (n <= 0) break;
      total += static_cast<uint64_t>(n);
    }
  }
  ::close(fd);
  return total;
}

bool SaysDiskFull(const grpc::Status& s) {
  return s.error_message().find("No space left on device") != std::string::npos ||
         s.error_message().find("is full") != std::string::npos;
}

// SPEC 6/10: with the data directory's disk full, the server refuses writes with a status
// that says so, keeps running and serving reads, loses nothing it acknowledged, and the
// swarm continues once space returns.
TEST(ServerProcessTest, FullDiskRefusesWritesAndRecovers) {
  const std::string root = ::testing::TempDir() + "/disk_full";
  fs::remove_all(root);
  TmpfsMount disk(root + "/mnt", 16 << 20);
  if (!disk.mounted()) {
    GTEST_SKIP() << "cannot mount a tmpfs for the full-disk test (" << disk.error()
                 << "); it needs root or CAP_SYS_ADMIN";
  }
  const std::string dir = root + "/mnt/server";
  ServerProcess server(dir, {"--plaintext"});
  int port = server.Start();
  ASSERT_GT(port, 0);
  const auto experts = MakeRandomExperts(3, kDim, 51);
  SyntheticEvaluator eval(*MakeHiddenOptimum(experts, 51, 0.0005));
  Agent a("firm-a", &eval), b("firm-b", &eval);
  // ALWAYS: every report is followed by an upload, so every step writes blobs too.
  StartSwarm(port, "seed: 9 max_iterations: 10 patience: 10", "mode: ASYNC upload_policy: ALWAYS",
             experts, a, b);
  Client ca(port, "firm-a", "agent"), cb(port, "firm-b", "agent");
  for (int i = 0; i < 3; ++i) {
    a.Step(ca);
    b.Step(cb);
  }
  ASSERT_TRUE(a.TakeFailures().empty());
  ASSERT_TRUE(b.TakeFailures().empty());

  const uint64_t filled = FillDisk(root + "/mnt/filler");
  ASSERT_GT(filled, 0u);
  std::vector<grpc::Status> refused;
  for (int i = 0; i < 10; ++i) {
    a.Step(ca);
    b.Step(cb);
    for (Agent* x : {&a, &b}) {
      for (grpc::Status& s : x->TakeFailures()) refused.push_back(std::move(s));
    }
  }
  ASSERT_TRUE(server.child().Running()) << ::wxp::proc::Tail(server.log_path());
  EXPECT_FALSE(refused.empty()) << "no write was refused on a full disk";
  std::cerr << "disk full (" << filled << " filler bytes): " << refused.size()
            << " calls refused, e.g. " << (refused.empty() ? "" : refused.front().error_message())
            << std::endl;
  // UNAVAILABLE: a full disk passes once space is freed, so clients retry it
  // (RESOURCE_EXHAUSTED is for limits no retry passes; proto/wxp.proto's code table).
  for (const grpc::Status& s : refused) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE)
        << s.error_code() << ": " << s.error_message();
    EXPECT_TRUE(SaysDiskFull(s)) << s.error_message();
  }
  // A new blob cannot be stored either: refused by the blob store, saying why.
  const grpc::Status upload = ca.Upload(Serialize(MakeRandomExperts(1, kDim, 52)[0]));
  EXPECT_EQ(upload.error_code(), grpc::StatusCode::UNAVAILABLE) << upload.error_message();
  EXPECT_TRUE(SaysDiskFull(upload)) << upload.error_message();
  std::cerr << "upload refused: " << upload.error_message() << std::endl;
  // Reads still work.
  Client admin(port, "ops", "admin");
  wxp::v1::GetSwarmStatusRequest sreq;
  sreq.set_swarm("swarm");
  wxp::v1::SwarmStatus status;
  grpc::Status st = admin.admin->GetSwarmStatus(admin.Ctx().get(), sreq, &status);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(status.state(), wxp::v1::RUNNING);
  EXPECT_TRUE(ca.Download(status.global_best().blob_id()).has_value());

  fs::remove(root + "/mnt/filler");
  bool alive = true;
  for (int steps = 0; alive && steps < 400; ++steps) {
    alive = a.Step(ca);
    alive = b.Step(cb) || alive;
  }
  EXPECT_TRUE(a.TakeFailures().empty());
  EXPECT_TRUE(b.TakeFailures().empty());
  ASSERT_TRUE(admin.admin->GetSwarmStatus(admin.Ctx().get(), sreq, &status).ok());
  EXPECT_EQ(status.state(), wxp::v1::FINISHED);
  const int exit_status = server.Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0)
      << ::wxp::proc::Tail(server.log_path());
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

// The example config promises that relative paths in a config file are relative to the
// file, so a unit file or an operator can start the server from any working directory.
TEST(ServerProcessTest, ConfigPathsAreRelativeToTheConfigFile) {
  const std::string dir = ::testing::TempDir() + "/server_config";
  fs::remove_all(dir);
  const std::string conf = dir + "/conf";
  ASSERT_TRUE(InitCa(dir + "/ca").ok());
  ASSERT_TRUE(IssueCertificate(dir + "/ca", {Role::kServer, "server"}, conf + "/certs").ok());
  std::ofstream(conf + "/server.textproto")
      << "listen: \"127.0.0.1:0\"\n"
      << "data_dir: \"state\"\n"
      << "tls { cert: \"certs/server.crt\" key: \"certs/server.key\" ca: \"certs/ca.crt\" }\n";
  // The test's working directory is the runfiles tree, not `conf`.
  ASSERT_NE(fs::current_path(), fs::path(conf));
  const std::string port_file = dir + "/port";
  proc::ChildProcess server;
  ASSERT_TRUE(server.Start(
      {ServerBinary(), "--config=" + conf + "/server.textproto", "--port_file=" + port_file},
      dir + "/server.log"));
  for (int i = 0; i < 400 && !fs::exists(port_file); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_TRUE(fs::exists(port_file)) << proc::Tail(dir + "/server.log");
  EXPECT_TRUE(fs::exists(conf + "/state/wxp.db")) << proc::Tail(dir + "/server.log");
  EXPECT_FALSE(fs::exists("state"));
  EXPECT_EQ(server.Kill(SIGTERM), 0) << proc::Tail(dir + "/server.log");
}

}  // namespace
}  // namespace wxp
