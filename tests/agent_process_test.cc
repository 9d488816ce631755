// The real wxp-server and real wxp-agent processes on loopback (SPEC 5.2, 6): a federated
// SYNC run must reproduce the in-process runner exactly (same global-best trajectory, same
// final adapter bytes) — also when agents and the server are killed with SIGKILL and
// restarted along the way — and the agent must turn an external evaluator's failures into
// failed evaluations, not crashes.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/net/connection.h"
#include "common/adapter.h"
#include "common/certs.h"
#include "common/file_util.h"
#include "common/runner.h"
#include "common/sha256.h"
#include "common/synthetic.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/processes.h"
#include "tests/testing/swarm_admin.h"
#include "tests/testing/synthetic_experts.h"

namespace wxp {
namespace {

namespace fs = std::filesystem;
using proc::ChildProcess;
using proc::Runfile;
using proc::ServerProcess;

class AgentProcessTest : public ::testing::Test {
 protected:
  // The adapters' layout; a fixture moving large adapters overrides it.
  virtual Schema AdapterSchema() const { return proc::SmallLoraSchema(); }

  std::string BlobIdOf(const std::vector<float>& values) {
    return *proc::BlobIdOf(AdapterSchema(), values);
  }

  void SetUp() override {
    root_ = proc::FreshDir(::testing::TempDir() + "/" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto experts = proc::SaveRandomExperts(AdapterSchema(), 3, 2024, root_);
    ASSERT_TRUE(experts.ok()) << experts.status();
    experts_ = experts->values;
    expert_dirs_ = experts->dirs;
    optimum_path_ = root_ + "/optimum.safetensors";
    auto optimum = proc::SaveHiddenOptimum(AdapterSchema(), experts_, 2024, optimum_path_);
    ASSERT_TRUE(optimum.ok()) << optimum.status();
    optimum_ = *optimum;
    StartServer({"--plaintext"});
  }

  void StartServer(std::vector<std::string> args) {
    server_ = std::make_unique<ServerProcess>(root_ + "/server", std::move(args));
    ASSERT_GT(server_->Start(), 0) << proc::Tail(server_->log_path());
  }

  // A client channel from PEM files, bypassing the client library's own checks (so an
  // expired certificate reaches the server).
  std::shared_ptr<grpc::Channel> RawTlsChannel(const std::string& cert, const std::string& key) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = *ReadFile(root_ + "/certs/ca.crt");
    if (!cert.empty()) {
      o.pem_cert_chain = *ReadFile(cert);
      o.pem_private_key = *ReadFile(key);
    }
    return grpc::CreateChannel(server_->address(), grpc::SslCredentials(o));
  }

  std::unique_ptr<client::Connection> Admin() { return Client("ops", Role::kAdmin); }

  std::unique_ptr<client::Connection> Client(const std::string& name, Role role) {
    return proc::ConnectAs(server_->address(), name, role, CertsDir());
  }

  // Where the clients' certificates are, empty while the server runs plaintext.
  std::string CertsDir() const { return tls_ ? root_ + "/certs" : ""; }

  void CreateSwarm(const std::string& extra) {
    grpc::Status s = proc::CreateSwarm(
        *Admin(),
        proc::SyntheticSwarmSpec("swarm", hyperparameters_,
                                 absl::StrCat("upload_policy: ", upload_policy_, " ", extra)));
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  std::vector<std::string> AgentArgs(const std::string& name, std::vector<int> experts,
                                     const std::vector<std::string>& evaluator) {
    return proc::AgentArgv(server_->address(), "swarm", name, proc::Pick(expert_dirs_, experts),
                           root_ + "/" + name, evaluator, CertsDir());
  }

  // Both at once: the pool orders the experts by blob id, so the agents may join in either
  // order and the oracle (given the same ids) still numbers the particles alike. `env_a` /
  // `env_b` are added to the agents' environments.
  void StartBoth(ChildProcess& a, const std::vector<std::string>& args_a, ChildProcess& b,
                 const std::vector<std::string>& args_b, const std::vector<std::string>& env_a = {},
                 const std::vector<std::string>& env_b = {}) {
    ASSERT_TRUE(a.Start(args_a, root_ + "/firm-a.log", env_a));
    ASSERT_TRUE(b.Start(args_b, root_ + "/firm-b.log", env_b));
  }

  std::vector<std::string> Synthetic() { return {"--synthetic_optimum=" + optimum_path_}; }

  RunResult Oracle(uint64_t seed, int max_iterations, int patience) {
    RunnerOptions o;
    o.params.seed = seed;
    o.params.max_iterations = max_iterations;
    o.params.patience = patience;
    o.params.pool_size = 5;
    for (const auto& e : experts_) o.expert_ids.push_back(BlobIdOf(e));
    SyntheticEvaluator eval(optimum_);
    auto r =
        RunSwarm(experts_, *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}}), eval, o);
    EXPECT_TRUE(r.ok()) << r.status();
    return *r;
  }

  wxp::v1::SwarmStatus Status() { return proc::SwarmStatusOf(*Admin(), "swarm"); }

  // The federated result equals the oracle's: trajectory and final bytes.
  void ExpectSameAsRunner(const RunResult& oracle) {
    EXPECT_EQ(proc::GlobalBestHistoryOf(*Admin(), "swarm"), proc::GlobalBestHistoryOf(oracle));
    const wxp::v1::SwarmStatus status = Status();
    EXPECT_EQ(status.state(), wxp::v1::FINISHED);
    EXPECT_EQ(status.global_best().utility(), oracle.best_utility);
    EXPECT_EQ(status.global_best().blob_id(), BlobIdOf(oracle.best));
  }

  // On the stopped server's data: every particle reported each iteration exactly once,
  // with no gap; every blob's bytes match its id (nothing partial is visible); with
  // `every_position_held` (upload policy ALWAYS) the server holds every evaluated position.
  void ExpectNothingLostOrPartial(bool every_position_held) {
    auto store = store::SqliteStore::Open({root_ + "/server/wxp.db"});
    ASSERT_TRUE(store.ok());
    EXPECT_EQ(*(*store)->IntegrityCheck(), "ok");
    auto evals = (*store)->ListEvaluations("swarm");
    ASSERT_TRUE(evals.ok());
    std::map<int, std::vector<int>> iterations;
    for (const auto& e : *evals) {
      iterations[e.particle_id].push_back(e.iteration);
      if (every_position_held && !e.failed) {
        EXPECT_TRUE(e.blob_held) << "particle " << e.particle_id << " iteration " << e.iteration
                                 << ": the server never got its position";
      }
    }
    ASSERT_EQ(iterations.size(), 5u);
    for (auto& [p, its] : iterations) {
      std::sort(its.begin(), its.end());
      for (size_t i = 0; i < its.size(); ++i) EXPECT_EQ(its[i], static_cast<int>(i)) << p;
    }
    int blobs = 0;
    for (const auto& f : fs::recursive_directory_iterator(root_ + "/server/blobs/blobs")) {
      if (f.is_regular_file() && f.path().filename().string().find(".tmp") == std::string::npos) {
        EXPECT_EQ(*Sha256File(f.path().string()), f.path().filename().string());
        ++blobs;
      }
    }
    EXPECT_GT(blobs, 0);
  }

  std::string root_;
  std::vector<std::vector<float>> experts_;
  std::vector<float> optimum_;
  std::vector<std::string> expert_dirs_;
  std::string optimum_path_;
  std::string hyperparameters_ = "seed: 99 max_iterations: 10 patience: 4 pool_size: 5";
  std::string upload_policy_ = "ON_DEMAND";
  std::unique_ptr<ServerProcess> server_;
  bool tls_ = false;
};

TEST_F(AgentProcessTest, FederatedSyncRunMatchesTheInProcessRunner) {
  CreateSwarm("");
  ChildProcess a, b;
  StartBoth(a, AgentArgs("firm-a", {0, 1}, Synthetic()), b, AgentArgs("firm-b", {2}, Synthetic()));
  const int sa = a.Wait(absl::Minutes(3)), sb = b.Wait(absl::Minutes(3));
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << proc::Tail(root_ + "/firm-a.log");
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(root_ + "/firm-b.log");
  ExpectSameAsRunner(Oracle(99, 10, 4));
  // One line per iteration per particle, with the utility and the upload decision.
  const std::string log = proc::Tail(root_ + "/firm-a.log", 1 << 20);
  EXPECT_NE(log.find("event=iteration particle="), std::string::npos) << log;
  EXPECT_NE(log.find(" uploaded="), std::string::npos);
  EXPECT_NE(log.find("event=agent_summary"), std::string::npos);
}

TEST_F(AgentProcessTest, SyncResultSurvivesAgentAndServerKills) {
  CreateSwarm("");
  ChildProcess a, b;
  const auto args_a = AgentArgs("firm-a", {0, 1}, Synthetic());
  const auto args_b = AgentArgs("firm-b", {2}, Synthetic());
  StartBoth(a, args_a, b, args_b);
  const proc::RandomKills kills =
      proc::KillAtRandom(a, args_a, root_ + "/firm-a.log", b, *server_, 6, 2, /*seed=*/7);
  ASSERT_EQ(kills.failure, "");
  const int sa = a.Wait(absl::Seconds(30)), sb = b.Wait(absl::Seconds(30));
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << proc::Tail(root_ + "/firm-a.log");
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(root_ + "/firm-b.log");
  EXPECT_GE(kills.agent, 3);
  ExpectSameAsRunner(Oracle(99, 10, 4));

  server_->Kill(SIGTERM);
  ExpectNothingLostOrPartial(/*every_position_held=*/false);
}

TEST_F(AgentProcessTest, ExternalEvaluatorFailuresAreReportedNotFatal) {
  hyperparameters_ = "seed: 5 max_iterations: 6 patience: 6 pool_size: 5";
  CreateSwarm("");
  // The harness scores like the synthetic evaluator, but fails every third call after the
  // initial ones, alternating a crash, garbage output and a hang past the time-out. The
  // time-out is far above a normal evaluation's time even on a loaded machine (at 2 s, a
  // slow python3 start once failed an initial evaluation), so only the hang reaches it.
  const std::string script = Runfile("tests/testdata/eval_synthetic.py");
  const std::vector<std::string> ext = {"--eval_command=python3 " + script + " " + optimum_path_,
                                        "--eval_timeout=15"};
  ChildProcess a, b;
  ASSERT_TRUE(a.Start(AgentArgs("firm-a", {0, 1}, ext), root_ + "/firm-a.log"));
  ASSERT_TRUE(b.Start(AgentArgs("firm-b", {2}, Synthetic()), root_ + "/firm-b.log"));
  const int sa = a.Wait(absl::Minutes(3)), sb = b.Wait(absl::Minutes(3));
  const std::string log = proc::Tail(root_ + "/firm-a.log", 1 << 20);
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << log;
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(root_ + "/firm-b.log");
  EXPECT_EQ(Status().state(), wxp::v1::FINISHED);
  EXPECT_NE(log.find("exited with status 3"), std::string::npos) << log;
  EXPECT_NE(log.find("not a JSON object"), std::string::npos) << log;
  EXPECT_NE(log.find("did not finish within"), std::string::npos) << log;
  server_->Kill(SIGTERM);
  auto store = store::SqliteStore::Open({root_ + "/server/wxp.db"});
  ASSERT_TRUE(store.ok());
  int failed = 0;
  auto evals = (*store)->ListEvaluations("swarm");
  ASSERT_TRUE(evals.ok());
  for (const auto& e : *evals) failed += e.failed;
  EXPECT_GE(failed, 3);
}

TEST_F(AgentProcessTest, FederatedRunOverMutualTlsAndItsRefusals) {
  server_->Kill(SIGTERM);
  const std::string ca = root_ + "/ca", certs = root_ + "/certs";
  ASSERT_TRUE(InitCa(ca).ok());
  ASSERT_TRUE(IssueCertificate(ca, {Role::kServer, "server"}, certs).ok());
  for (const char* firm : {"firm-a", "firm-b"}) {
    ASSERT_TRUE(IssueCertificate(ca, {Role::kAgent, firm}, certs).ok());
  }
  ASSERT_TRUE(IssueCertificate(ca, {Role::kAdmin, "ops"}, certs).ok());
  CertificateRequest expired{Role::kAgent, "stale"};
  expired.not_before = absl::Now() - absl::Hours(3);
  expired.validity = absl::Hours(1);
  ASSERT_TRUE(IssueCertificate(ca, expired, certs).ok());
  ASSERT_TRUE(InitCa(root_ + "/other-ca").ok());
  ASSERT_TRUE(
      IssueCertificate(root_ + "/other-ca", {Role::kAgent, "firm-a"}, root_ + "/other").ok());
  tls_ = true;
  StartServer(proc::ServerTlsFlags(certs));

  // The handshake refuses: no client certificate, another CA's (same name), an expired one.
  auto list = [](const std::shared_ptr<grpc::Channel>& ch) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    wxp::v1::ListSwarmsResponse resp;
    return wxp::v1::AdminService::NewStub(ch)->ListSwarms(&ctx, {}, &resp).error_code();
  };
  EXPECT_EQ(list(RawTlsChannel("", "")), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(list(RawTlsChannel(root_ + "/other/firm-a.crt", root_ + "/other/firm-a.key")),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(list(RawTlsChannel(certs + "/stale.crt", certs + "/stale.key")),
            grpc::StatusCode::UNAVAILABLE);
  // The client library refuses an expired certificate before dialling, saying so.
  client::ConnectionOptions stale;
  stale.server_address = server_->address();
  stale.tls.cert_file = certs + "/stale.crt";
  stale.tls.key_file = certs + "/stale.key";
  stale.tls.ca_file = certs + "/ca.crt";
  auto refused = client::Connection::Open(stale, absl::Now());
  EXPECT_FALSE(refused.ok());
  // An agent certificate cannot call the admin service.
  auto agent_a = Client("firm-a", Role::kAgent);
  wxp::v1::ListSwarmsResponse swarms;
  grpc::Status as_admin = agent_a->admin().ListSwarms(agent_a->NewContext().get(), {}, &swarms);
  EXPECT_EQ(as_admin.error_code(), grpc::StatusCode::PERMISSION_DENIED) << as_admin.error_message();
  EXPECT_EQ(list(RawTlsChannel(certs + "/ops.crt", certs + "/ops.key")), grpc::StatusCode::OK);

  CreateSwarm("");
  ChildProcess a, b;
  StartBoth(a, AgentArgs("firm-a", {0, 1}, Synthetic()), b, AgentArgs("firm-b", {2}, Synthetic()));
  // Once the pool exists: firm-b may not touch a particle of firm-a's.
  // The bound only ends a broken run: under ASan on a loaded machine the joins and uploads
  // before the pool exists took more than 10 s.
  ASSERT_TRUE(proc::PollUntil([&] { return Status().state() == wxp::v1::RUNNING; },
                              absl::Minutes(3), absl::Milliseconds(20)))
      << proc::Tail(server_->log_path());
  int firm_a_particle = -1;
  {
    auto ops = Admin();
    wxp::v1::ListParticlesRequest lreq;
    lreq.set_swarm("swarm");
    wxp::v1::ListParticlesResponse particles;
    ASSERT_TRUE(ops->admin().ListParticles(ops->NewContext().get(), lreq, &particles).ok());
    for (const auto& p : particles.particles()) {
      if (p.owner() == "firm-a") {
        firm_a_particle = p.particle_id();
        break;
      }
    }
  }
  ASSERT_GE(firm_a_particle, 0);
  auto agent_b = Client("firm-b", Role::kAgent);
  wxp::v1::GetTargetsRequest treq;
  treq.set_swarm("swarm");
  treq.set_particle_id(firm_a_particle);
  treq.set_iteration(1);
  wxp::v1::GetTargetsResponse targets;
  grpc::Status foreign = agent_b->agent().GetTargets(agent_b->NewContext().get(), treq, &targets);
  EXPECT_EQ(foreign.error_code(), grpc::StatusCode::PERMISSION_DENIED) << foreign.error_message();
  wxp::v1::ReportRequest rreq;
  rreq.set_swarm("swarm");
  rreq.set_particle_id(firm_a_particle);
  rreq.set_iteration(0);
  rreq.set_position_blob_id(BlobIdOf(experts_[0]));
  (*rreq.mutable_scores())[kSyntheticComponent] = 0;
  wxp::v1::ReportResponse rresp;
  grpc::Status foreign_report = agent_b->agent().Report(agent_b->NewContext().get(), rreq, &rresp);
  EXPECT_EQ(foreign_report.error_code(), grpc::StatusCode::PERMISSION_DENIED);

  const int sa = a.Wait(absl::Minutes(3)), sb = b.Wait(absl::Minutes(3));
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << proc::Tail(root_ + "/firm-a.log");
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(root_ + "/firm-b.log");
  ExpectSameAsRunner(Oracle(99, 10, 4));

  // A revoked client is refused on its next call, with its valid certificate.
  auto admin = Admin();
  wxp::v1::RevokeClientRequest revoke;
  revoke.set_identity("firm-b");
  wxp::v1::ClientInfo info;
  ASSERT_TRUE(admin->admin().RevokeClient(admin->NewContext().get(), revoke, &info).ok());
  wxp::v1::HeartbeatRequest hb;
  hb.set_swarm("swarm");
  wxp::v1::HeartbeatResponse hbr;
  grpc::Status revoked = agent_b->agent().Heartbeat(agent_b->NewContext().get(), hb, &hbr);
  EXPECT_EQ(revoked.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(revoked.error_message().find("revoked"), std::string::npos) << revoked.error_message();
}

// Agents killed with SIGKILL, most kills in the middle of an upload (8 MiB adapters, upload
// policy ALWAYS: every iteration uploads), and restarted each time on the same work
// directory. CI kills 4 times; the full run sets WXP_FAULT_AGENT_KILLS
// (e.g. 24) and optionally WXP_FAULT_SEED (see the test's BUILD entry).
class AgentKillTest : public AgentProcessTest {
 protected:
  Schema AdapterSchema() const override {
    return Schema({{"base_model.model.layer.q_proj.lora_A.weight", DType::kF32, {8, 131072}},
                   {"base_model.model.layer.q_proj.lora_B.weight", DType::kF32, {131072, 8}}});
  }
};

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

// True once the server holds a partial upload of at least `bytes` (the bytes an agent
// streamed before its fault hook stopped it), waiting for it until `deadline`.
bool PartialUploadOnServer(const std::string& partial_dir, uintmax_t bytes, absl::Time deadline) {
  do {
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(partial_dir, ec)) {
      if (fs::file_size(f.path(), ec) >= bytes && !ec) return true;
    }
    absl::SleepFor(absl::Milliseconds(5));
  } while (absl::Now() < deadline);
  return false;
}

// Agents killed with SIGKILL and restarted on the same work directory, two kills in three in
// the middle of an upload by construction: the agents run with the upload fault hook of
// client/net/blob_transfer.cc, which makes an armed agent stop after streaming 1 MiB of a
// position and create its marker file; the test waits for a marker (and for the server to
// hold the partial upload) and kills that agent there. Deleting a marker arms the hook,
// creating it disarms it. Every third kill lands at a random moment instead (mid-move,
// mid-evaluation, mid-report, waiting for targets).
TEST_F(AgentKillTest, AgentsKilledMidUploadLeaveNothingPartialAndLoseNoIteration) {
  const int target_kills = EnvInt("WXP_FAULT_AGENT_KILLS", 4);
  const int seed = EnvInt("WXP_FAULT_SEED", 1);
  // Enough iterations for the kills to land while the swarm runs.
  const int iterations = std::max(5, target_kills);
  hyperparameters_ = absl::StrCat("seed: 99 max_iterations: ", iterations,
                                  " patience: ", iterations, " pool_size: 5");
  std::cerr << "agent kills: " << target_kills << ", seed " << seed << ", " << iterations
            << " iterations" << std::endl;
  upload_policy_ = "ALWAYS";
  ASSERT_NO_FATAL_FAILURE(CreateSwarm(""));
  constexpr uintmax_t kHoldAfter = 1 << 20;
  const std::string marker[] = {root_ + "/hold-upload-a", root_ + "/hold-upload-b"};
  // Disarmed until the loop below arms them (an expert's upload may be the one held then).
  for (const std::string& m : marker) std::ofstream(m) << "disarmed";
  auto env = [&](int i) {
    return std::vector<std::string>{absl::StrCat("WXP_FAULT_HOLD_UPLOAD_AFTER_BYTES=", kHoldAfter),
                                    "WXP_FAULT_HOLD_UPLOAD_MARKER=" + marker[i]};
  };
  ChildProcess a, b;
  const auto args_a = AgentArgs("firm-a", {0, 1}, Synthetic());
  const auto args_b = AgentArgs("firm-b", {2}, Synthetic());
  StartBoth(a, args_a, b, args_b, env(0), env(1));
  ChildProcess* agents[] = {&a, &b};
  const std::vector<std::string>* args[] = {&args_a, &args_b};
  const char* logs[] = {"/firm-a.log", "/firm-b.log"};
  std::mt19937 rng(seed);
  int kills = 0, mid_upload = 0;
  // armed[i]: the test deleted agent i's marker, so its next upload past kHoldAfter holds.
  bool armed[2] = {false, false};
  auto holding = [&](int i) { return armed[i] && fs::exists(marker[i]); };
  auto kill_and_restart = [&](int i, bool mid) {
    agents[i]->Kill(SIGKILL);
    ++kills;
    mid_upload += mid;
    armed[i] = !fs::exists(marker[i]);  // a hook that has not fired stays armed
    return agents[i]->Start(*args[i], root_ + logs[i], env(i));
  };
  const std::string partial = root_ + "/server/blobs/partial";
  const absl::Time give_up = absl::Now() + absl::Minutes(10);
  while ((a.Running() || b.Running()) && kills < target_kills && absl::Now() < give_up) {
    if (kills % 3 == 2) {
      absl::SleepFor(absl::Milliseconds(50 + rng() % 400));
      const int i = static_cast<int>(rng() % 2);
      if (agents[i]->Running()) {
        ASSERT_TRUE(kill_and_restart(i, holding(i)));
      }
      continue;
    }
    for (int i : {0, 1}) {
      if (!armed[i] && agents[i]->Running()) armed[i] = fs::remove(marker[i]);
    }
    int held = -1;
    while (held < 0 && absl::Now() < give_up && (a.Running() || b.Running())) {
      for (int i : {0, 1}) {
        if (holding(i)) held = i;
      }
      if (held < 0) absl::SleepFor(absl::Milliseconds(5));
    }
    if (held < 0) break;
    ASSERT_TRUE(PartialUploadOnServer(partial, kHoldAfter, give_up))
        << "an agent stopped mid-upload but the server holds no partial upload";
    ASSERT_TRUE(kill_and_restart(held, true));
  }
  // Disarm the hooks that have not fired; an agent whose hook fired meanwhile is holding an
  // upload, and is killed there once more.
  for (int i : {0, 1}) {
    if (!armed[i] || !agents[i]->Running()) continue;
    const int fd = open(marker[i].c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
      close(fd);
      armed[i] = false;
    } else {
      ASSERT_TRUE(kill_and_restart(i, true));
    }
  }
  const int sa = a.Wait(absl::Minutes(5)), sb = b.Wait(absl::Minutes(5));
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << proc::Tail(root_ + "/firm-a.log");
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(root_ + "/firm-b.log");
  std::cerr << "killed agents " << kills << " times, " << mid_upload << " of them mid-upload"
            << std::endl;
  EXPECT_GE(kills, target_kills);
  EXPECT_GE(mid_upload, target_kills - target_kills / 3);
  // The kills change nothing in the result: the same trajectory and bytes as the runner.
  ExpectSameAsRunner(Oracle(99, iterations, iterations));
  server_->Kill(SIGTERM);
  ExpectNothingLostOrPartial(/*every_position_held=*/true);
}

}  // namespace
}  // namespace wxp
