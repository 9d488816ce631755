// The real wxp-server binary on a loopback port, driven over gRPC by in-test agents that do
// what wxp-agent does (tests/testing/swarm_driver.h: upload experts, join, move locally,
// report, upload when asked). The server is killed with SIGKILL in the middle of the run and
// restarted on the same data directory; the swarm must finish with exactly the in-process
// runner's result. Then SIGTERM must stop it cleanly.
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
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/adapter.h"
#include "common/certs.h"
#include "common/runner.h"
#include "common/sha256.h"
#include "common/synthetic.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/wxp.grpc.pb.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/processes.h"
#include "tests/testing/swarm_driver.h"

namespace wxp {
namespace {

namespace fs = std::filesystem;

using ::wxp::proc::Agent;
using ::wxp::proc::Client;
using ::wxp::proc::Deserialize;
using ::wxp::proc::kDim;
using ::wxp::proc::Serialize;
using ::wxp::proc::ServerProcess;
using ::wxp::proc::StartSwarm;

std::string ServerBinary() { return ::wxp::proc::Runfile("server/app/wxp-server"); }

// SPEC 6 invariants on a stopped server's data directory.
void ExpectDurableState(const std::string& dir, const std::vector<const Agent*>& agents) {
  auto store = store::SqliteStore::Open({dir + "/wxp.db"});
  ASSERT_TRUE(store.ok()) << store.status();
  ::wxp::proc::ExpectDurableState(**store, dir, agents);
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
  // kill -9 mid-run, then the same data directory again.
  port = ::wxp::proc::RunKillingOnce(server, port, /*kill_at=*/5, a, b);
  ASSERT_GT(port, 0);
  RunnerOptions o;
  o.params.seed = 77;
  o.params.max_iterations = 8;
  o.params.patience = 3;
  const std::vector<float> best = ::wxp::proc::ExpectFinishedAsTheRunner(port, experts, eval, o);
  ASSERT_FALSE(best.empty());

  // Export over the wire and check it is a PEFT directory's worth of verified files.
  Client admin(port, "ops", "admin");
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
  EXPECT_EQ(Deserialize(files["adapter_model.safetensors"]), best);

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
