// The EXPERT_COEFFICIENTS space federated (SPEC 4.3): the real wxp-server and wxp-agent
// processes on loopback search coefficient vectors alpha over the experts. A SYNC run must
// reproduce the in-process runner over the same space byte for byte (every global-best
// utility and g's alpha) for each decoder; a LINEAR_AB run must make the same g choices as
// a WEIGHTS run of the same seed (utilities within float tolerance: decoding sums in
// another order); the export must be g decoded; and SIGKILLed agents and a SIGKILLed or
// SIGTERMed server must not change the result. An ASYNC run must finish with g's utility the
// evaluator's for g decoded.
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/net/connection.h"
#include "common/adapter.h"
#include "common/alpha_blob.h"
#include "common/file_util.h"
#include "common/particle_space.h"
#include "common/runner.h"
#include "common/sha256.h"
#include "common/synthetic.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/processes.h"
#include "tests/testing/swarm_admin.h"
#include "tests/testing/synthetic_experts.h"

namespace wxp {
namespace {

namespace fs = std::filesystem;
using proc::ChildProcess;
using proc::ServerProcess;

// Polls `done` until it holds, 50 ms apart; the 3 minutes only bound a hung process.
bool WaitUntil(const std::function<bool()>& done) {
  return proc::PollUntil(done, absl::Minutes(3), absl::Milliseconds(50));
}

constexpr char kHyper[] = "seed: 99 max_iterations: 8 patience: 4 pool_size: 5";

class CoefficientProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = proc::FreshDir(::testing::TempDir() + "/" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto saved = proc::SaveRandomExperts(proc::SmallLoraSchema(), 3, 2024, root_);
    ASSERT_TRUE(saved.ok()) << saved.status();
    expert_dirs_ = saved->dirs;
    for (const std::string& dir : expert_dirs_) {
      Adapter loaded = *LoadAdapter(dir);
      experts_.push_back(loaded);
      ids_.push_back(*BlobId(loaded));
    }
    server_ =
        std::make_unique<ServerProcess>(root_ + "/server", std::vector<std::string>{"--plaintext"});
    ASSERT_GT(server_->Start(), 0) << proc::Tail(server_->log_path());
  }

  std::unique_ptr<client::Connection> Admin() {
    return proc::ConnectAs(server_->address(), "ops", Role::kAdmin);
  }

  grpc::Status CreateSwarm(const std::string& name, const std::string& extra,
                           const std::string& mode = "SYNC") {
    return proc::CreateSwarm(*Admin(), proc::SyntheticSwarmSpec(name, kHyper, extra, mode));
  }

  std::vector<std::string> AgentArgs(const std::string& swarm, const std::string& name,
                                     std::vector<int> experts, const std::string& optimum) {
    return proc::AgentArgv(server_->address(), swarm, name, proc::Pick(expert_dirs_, experts),
                           root_ + "/" + swarm + "-" + name, {"--synthetic_optimum=" + optimum});
  }

  // Runs the swarm with two agents (experts {0, 1} and {2}) to the end.
  void RunAgents(const std::string& swarm, const std::string& optimum) {
    ChildProcess a, b;
    const std::string log_a = root_ + "/" + swarm + "-a.log",
                      log_b = root_ + "/" + swarm + "-b.log";
    ASSERT_TRUE(a.Start(AgentArgs(swarm, "firm-a", {0, 1}, optimum), log_a));
    ASSERT_TRUE(b.Start(AgentArgs(swarm, "firm-b", {2}, optimum), log_b));
    const int sa = a.Wait(absl::Minutes(3)), sb = b.Wait(absl::Minutes(3));
    ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << proc::Tail(log_a);
    ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(log_b);
  }

  // The experts in pool order (by blob id), as the server numbers them.
  std::vector<Adapter> ExpertsInPoolOrder() {
    std::vector<Adapter> out;
    for (int i : PoolOrder(ids_)) out.push_back(experts_[i]);
    return out;
  }

  std::string SaveOptimum(const std::string& name, const Adapter& optimum) {
    const std::string path = root_ + "/" + name + ".safetensors";
    EXPECT_TRUE(SaveSafetensors(optimum, path).ok());
    return path;
  }

  wxp::v1::SwarmStatus Status(const std::string& swarm) {
    return proc::SwarmStatusOf(*Admin(), swarm);
  }

  std::vector<double> GlobalBestHistory(const std::string& swarm) {
    return proc::GlobalBestHistoryOf(*Admin(), swarm);
  }

  // The exported files by path.
  std::map<std::string, std::string> Export(const std::string& swarm) {
    auto admin = Admin();
    wxp::v1::ExportBestRequest req;
    req.set_swarm(swarm);
    auto ctx = admin->NewContext();
    auto reader = admin->admin().ExportBest(ctx.get(), req);
    std::map<std::string, std::string> files;
    std::map<std::string, std::string> sha;
    wxp::v1::ExportChunk chunk;
    while (reader->Read(&chunk)) {
      files[chunk.path()] += chunk.chunk().data();
      if (!chunk.sha256().empty()) sha[chunk.path()] = chunk.sha256();
    }
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    for (const auto& [path, digest] : sha) EXPECT_EQ(Sha256Hex(files[path]), digest) << path;
    return files;
  }

  // The blob `id` as the server holds it (admins may download blobs too).
  std::string Download(const std::string& id) {
    auto admin = Admin();
    wxp::v1::DownloadBlobRequest req;
    req.set_blob_id(id);
    auto ctx = admin->NewContext();
    auto reader = admin->agent().DownloadBlob(ctx.get(), req);
    std::string bytes;
    wxp::v1::DownloadBlobResponse chunk;
    while (reader->Read(&chunk)) bytes += chunk.chunk().data();
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(Sha256Hex(bytes), id);
    return bytes;
  }

  // The oracle: RunSwarm over `space` with the agents' evaluator and the swarm's spec.
  absl::StatusOr<RunResult> RunOracle(const ParticleSpace& space, const Adapter& optimum) {
    SyntheticEvaluator flat(optimum.values);
    FlatAdapterEvaluator adapters(optimum.schema, flat);
    DecodingEvaluator eval(space, adapters);
    RunnerOptions o;
    o.params.seed = 99;
    o.params.max_iterations = 8;
    o.params.patience = 4;
    o.params.pool_size = 5;
    o.crossover_groups = space.CrossoverGroups();
    return RunSwarm(space.InitialPositions(),
                    *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}}), eval, o);
  }

  // The federated result equals RunSwarm's over `space` with the same evaluator: every g
  // utility and g's alpha, byte for byte; and the export is g decoded.
  void ExpectSameAsRunner(const std::string& swarm, const ParticleSpace& space,
                          const Adapter& optimum) {
    auto oracle = RunOracle(space, optimum);
    ASSERT_TRUE(oracle.ok()) << oracle.status();
    EXPECT_EQ(GlobalBestHistory(swarm), proc::GlobalBestHistoryOf(*oracle));
    const wxp::v1::SwarmStatus status = Status(swarm);
    EXPECT_EQ(status.state(), wxp::v1::FINISHED);
    EXPECT_EQ(status.global_best().utility(), oracle->best_utility);
    EXPECT_EQ(status.global_best().blob_id(), *AlphaBlobId(oracle->best));

    // The export is g decoded, as a PEFT directory whose config matches the decoded rank.
    auto files = Export(swarm);
    Adapter best = *space.Decode(oracle->best);
    EXPECT_EQ(files[kPeftWeightsFile], *SerializeAdapter(best));
    EXPECT_EQ(files[kPeftConfigFile], best.config_json.value_or(""));
  }

  std::string root_;
  std::vector<std::string> expert_dirs_;
  std::vector<Adapter> experts_;
  std::vector<std::string> ids_;
  std::unique_ptr<ServerProcess> server_;
};

struct DecoderCase {
  std::string spec;  // the SwarmSpec fields
  ParticleSpaceOptions options;
};

TEST_F(CoefficientProcessTest, FederatedRunEqualsTheInProcessRunnerForEveryDecoder) {
  const std::vector<DecoderCase> cases = {
      {"space: EXPERT_COEFFICIENTS decoder: LINEAR_AB",
       {SpaceKind::kExpertCoefficients, LoraDecoder::kLinearAB, 0, false}},
      {"space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT",
       {SpaceKind::kExpertCoefficients, LoraDecoder::kLoraProduct, 0, false}},
      {"space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT_SVD svd_rank: 3",
       {SpaceKind::kExpertCoefficients, LoraDecoder::kLoraProductSvd, 3, false}},
      {"space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT per_module: true",
       {SpaceKind::kExpertCoefficients, LoraDecoder::kLoraProduct, 0, true}},
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    SCOPED_TRACE(cases[c].spec);
    const std::string swarm = absl::StrCat("coef", c);
    auto space = ParticleSpace::Create(ExpertsInPoolOrder(), cases[c].options);
    ASSERT_TRUE(space.ok()) << space.status();
    // A hidden optimum the space can reach, in the decoded adapters' layout.
    Adapter optimum = *(*space)->Decode(std::vector<float>{0.55f, 0.15f, 0.5f});
    const std::string optimum_path = SaveOptimum(swarm, optimum);
    ASSERT_TRUE(CreateSwarm(swarm, cases[c].spec).ok());
    RunAgents(swarm, optimum_path);

    ExpectSameAsRunner(swarm, **space, optimum);
  }
}

TEST_F(CoefficientProcessTest, LinearAbMakesTheSameChoicesAsWeights) {
  auto space = ParticleSpace::Create(
      ExpertsInPoolOrder(), {SpaceKind::kExpertCoefficients, LoraDecoder::kLinearAB, 0, false});
  ASSERT_TRUE(space.ok()) << space.status();
  Adapter optimum = *(*space)->Decode(std::vector<float>{0.55f, 0.15f, 0.5f});
  const std::string optimum_path = SaveOptimum("optimum", optimum);
  ASSERT_TRUE(CreateSwarm("weights", "").ok());
  ASSERT_TRUE(CreateSwarm("linear", "space: EXPERT_COEFFICIENTS decoder: LINEAR_AB").ok());
  RunAgents("weights", optimum_path);
  RunAgents("linear", optimum_path);
  const std::vector<double> w = GlobalBestHistory("weights"), l = GlobalBestHistory("linear");
  ASSERT_EQ(w.size(), l.size());
  for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(w[i], l[i], 1e-5) << "iteration " << i;
  const wxp::v1::SwarmStatus ws = Status("weights"), ls = Status("linear");
  EXPECT_EQ(ws.global_best().particle_id(), ls.global_best().particle_id());
  EXPECT_EQ(ws.global_best().iteration(), ls.global_best().iteration());
  EXPECT_NEAR(ws.global_best().utility(), ls.global_best().utility(), 1e-5);
}

TEST_F(CoefficientProcessTest, LoraProductRunSurvivesAgentAndServerKills) {
  auto space = ParticleSpace::Create(
      ExpertsInPoolOrder(), {SpaceKind::kExpertCoefficients, LoraDecoder::kLoraProduct, 0, false});
  ASSERT_TRUE(space.ok()) << space.status();
  Adapter optimum = *(*space)->Decode(std::vector<float>{0.55f, 0.15f, 0.5f});
  const std::string optimum_path = SaveOptimum("optimum", optimum);
  ASSERT_TRUE(CreateSwarm("killed", "space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT").ok());
  ChildProcess a, b;
  const auto args_a = AgentArgs("killed", "firm-a", {0, 1}, optimum_path);
  const auto args_b = AgentArgs("killed", "firm-b", {2}, optimum_path);
  const std::string log_a = root_ + "/killed-a.log", log_b = root_ + "/killed-b.log";
  ASSERT_TRUE(a.Start(args_a, log_a));
  ASSERT_TRUE(b.Start(args_b, log_b));
  // As agent_process_test's kill test; each server restart reloads alpha's dimension from
  // the store.
  const proc::RandomKills kills = proc::KillAtRandom(a, args_a, log_a, b, *server_, 4, 2, 11);
  ASSERT_EQ(kills.failure, "");
  const int sa = a.Wait(absl::Seconds(30)), sb = b.Wait(absl::Seconds(30));
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << proc::Tail(log_a);
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(log_b);
  EXPECT_GE(kills.agent, 2);
  ExpectSameAsRunner("killed", **space, optimum);
}

// ASYNC (SPEC 5.2 step 4) in the coefficient space: with no barrier the trajectory depends on
// the agents' timing, so it need not be the runner's; but the run finishes, g never gets
// worse, g's utility is exactly what the agents' evaluator gives for g decoded, and the
// export is g decoded.
TEST_F(CoefficientProcessTest, AsyncLoraProductRunFinishesWithGDecoded) {
  auto space = ParticleSpace::Create(
      ExpertsInPoolOrder(), {SpaceKind::kExpertCoefficients, LoraDecoder::kLoraProduct, 0, false});
  ASSERT_TRUE(space.ok()) << space.status();
  Adapter optimum = *(*space)->Decode(std::vector<float>{0.55f, 0.15f, 0.5f});
  const std::string optimum_path = SaveOptimum("optimum", optimum);
  ASSERT_TRUE(
      CreateSwarm("async", "space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT", "ASYNC").ok());
  RunAgents("async", optimum_path);

  const wxp::v1::SwarmStatus status = Status("async");
  EXPECT_EQ(status.state(), wxp::v1::FINISHED);
  EXPECT_EQ(status.mode(), wxp::v1::ASYNC);
  const std::vector<double> history = GlobalBestHistory("async");
  ASSERT_GE(history.size(), 2u);
  for (size_t k = 1; k < history.size(); ++k) {
    EXPECT_GE(history[k], history[k - 1]) << "iteration " << k;
  }
  EXPECT_GE(status.global_best().utility(), history.back());

  // g's alpha from its canonical blob, scored again here as the agents score it.
  const wxp::v1::PositionRef& g = status.global_best();
  ASSERT_FALSE(g.blob_id().empty());
  auto alpha = AlphaFromBlobBytes(Download(g.blob_id()));
  ASSERT_TRUE(alpha.ok()) << alpha.status();
  ASSERT_EQ(alpha->size(), 3u);
  EXPECT_EQ(*AlphaBlobId(*alpha), g.blob_id());
  SyntheticEvaluator flat(optimum.values);
  FlatAdapterEvaluator adapters(optimum.schema, flat);
  DecodingEvaluator eval(**space, adapters);
  auto scores = eval.Evaluate({g.particle_id(), g.iteration(), *alpha});
  ASSERT_TRUE(scores.ok()) << scores.status();
  auto utility = UtilityFunction::Create({{kSyntheticComponent, true, 1.0}})->Combine(*scores);
  ASSERT_TRUE(utility.ok()) << utility.status();
  EXPECT_EQ(g.utility(), *utility);

  auto files = Export("async");
  Adapter best = *(*space)->Decode(*alpha);
  EXPECT_EQ(files[kPeftWeightsFile], *SerializeAdapter(best));
  EXPECT_EQ(files[kPeftConfigFile], best.config_json.value_or(""));
}

// A graceful stop (SIGTERM: in-flight calls drained, the store closed cleanly) and restart of
// the server after a round has closed, twice, changes nothing: the run still equals the
// runner's byte for byte. The SIGKILL test above restarts from a crashed store at random
// moments; this one takes the shutdown path at the round boundaries.
TEST_F(CoefficientProcessTest, LoraProductRunSurvivesGracefulServerRestarts) {
  auto space = ParticleSpace::Create(
      ExpertsInPoolOrder(), {SpaceKind::kExpertCoefficients, LoraDecoder::kLoraProduct, 0, false});
  ASSERT_TRUE(space.ok()) << space.status();
  Adapter optimum = *(*space)->Decode(std::vector<float>{0.55f, 0.15f, 0.5f});
  const std::string optimum_path = SaveOptimum("optimum", optimum);
  auto oracle = RunOracle(**space, optimum);
  ASSERT_TRUE(oracle.ok()) << oracle.status();
  // The last closed iteration is history.size() - 1: restart after round 1 and midway.
  const int last = static_cast<int>(oracle->history.size()) - 1;
  ASSERT_GE(last, 3);
  const std::vector<int> restart_after = {1, (last + 1) / 2};

  ASSERT_TRUE(CreateSwarm("termed", "space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT").ok());
  ChildProcess a, b;
  const std::string log_a = root_ + "/termed-a.log", log_b = root_ + "/termed-b.log";
  ASSERT_TRUE(a.Start(AgentArgs("termed", "firm-a", {0, 1}, optimum_path), log_a));
  ASSERT_TRUE(b.Start(AgentArgs("termed", "firm-b", {2}, optimum_path), log_b));
  int restarts = 0;
  for (int k : restart_after) {
    ASSERT_TRUE(WaitUntil([&] {
      const wxp::v1::SwarmStatus s = Status("termed");
      return s.iteration() >= k || s.state() == wxp::v1::FINISHED;
    })) << "round "
        << k << " did not close: " << proc::Tail(log_a);
    if (Status("termed").state() == wxp::v1::FINISHED) break;
    const int exit_status = server_->Kill(SIGTERM);
    EXPECT_TRUE(WIFEXITED(exit_status) && WEXITSTATUS(exit_status) == 0)
        << exit_status << ": " << proc::Tail(server_->log_path());
    ASSERT_GT(server_->Start(), 0) << proc::Tail(server_->log_path());
    ++restarts;
  }
  const int sa = a.Wait(absl::Minutes(3)), sb = b.Wait(absl::Minutes(3));
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << proc::Tail(log_a);
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(log_b);
  // The first restart always lands (round 1 of at least 3); the second only if the run is
  // still going when the poll sees its round, which a fast machine need not give.
  EXPECT_GE(restarts, 1);
  ExpectSameAsRunner("termed", **space, optimum);
}

// Two objectives for the dynamic-utility run: negative RMS distances of the candidate to two
// optima (safetensors files of one layout), as an evaluation harness would report them.
// Arguments: optimum a, optimum b, a gate directory, N, the candidate. Every evaluation after
// the first N waits until <gate>/open exists, so the run cannot end before the test
// has changed the weights, however fast or slow the machine.
constexpr int kGateAfter = 20;
constexpr char kTwoOptimaScript[] = R"(import json, math, os, struct, sys, tempfile, time
gate = sys.argv[3]
os.makedirs(os.path.join(gate, "evals"), exist_ok=True)
tempfile.mkstemp(dir=os.path.join(gate, "evals"))
if len(os.listdir(os.path.join(gate, "evals"))) > int(sys.argv[4]):
    while not os.path.exists(os.path.join(gate, "open")):
        time.sleep(0.05)
def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    tensors = sorted((t for k, t in header.items() if k != "__metadata__"),
                     key=lambda t: t["data_offsets"][0])
    values = []
    for t in tensors:
        start, end = t["data_offsets"]
        values.extend(struct.unpack("<%df" % ((end - start) // 4), data[start:end]))
    return values
def neg_rms(x, y):
    sq = 0.0
    for a, b in zip(x, y):
        sq += (a - b) * (a - b)
    return -math.sqrt(sq / len(y))
x = load(os.path.join(sys.argv[5], "adapter_model.safetensors"))
print(json.dumps({"scores": {"near_a": neg_rms(x, load(sys.argv[1])),
                             "near_b": neg_rms(x, load(sys.argv[2]))}}))
)";

// Dynamic utility (SPEC 4.2, 4.4) through the real processes: after round 2 the weights move
// from one objective to the other. The server re-ranks what it holds (every alpha in this
// space), the agents adopt the re-chosen p_i, g and g_w, and the run finishes under the new
// weights: g is the best of the new objective it has seen, at least as good there as the g
// of the old one, and its utility is the new objective's score of g decoded.
TEST_F(CoefficientProcessTest, ChangedUtilityWeightsRetargetTheRun) {
  auto space = ParticleSpace::Create(
      ExpertsInPoolOrder(), {SpaceKind::kExpertCoefficients, LoraDecoder::kLoraProduct, 0, false});
  ASSERT_TRUE(space.ok()) << space.status();
  const Adapter optimum_a = *(*space)->Decode(std::vector<float>{0.55f, 0.15f, 0.5f});
  // Far enough apart that any g of the first objective (at least as close to it as the
  // initial position e_0) is further from the second than the initial position e_1 is.
  const Adapter optimum_b = *(*space)->Decode(std::vector<float>{-0.5f, 0.8f, -0.4f});
  const std::string script = root_ + "/two_optima.py";
  ASSERT_TRUE(WriteFileAtomically(script, kTwoOptimaScript).ok());
  const std::string gate = root_ + "/gate";
  const std::string eval_command =
      absl::StrCat("--eval_command=python3 ", script, " ", SaveOptimum("a", optimum_a), " ",
                   SaveOptimum("b", optimum_b), " ", gate, " ", kGateAfter);
  const grpc::Status created = proc::CreateSwarm(
      *Admin(),
      "spec { name: 'retarget' min_experts: 3 mode: SYNC round_deadline_seconds: 600 "
      "utility { name: 'near_a' weight: 1 } utility { name: 'near_b' weight: 0 } "
      "hyperparameters { seed: 99 max_iterations: 10 patience: 10 pool_size: 5 } "
      "space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT }");
  ASSERT_TRUE(created.ok()) << created.error_message();
  auto args = [&](const std::string& name, std::vector<int> experts) {
    std::vector<std::string> argv = AgentArgs("retarget", name, experts, "");
    argv.back() = eval_command;  // instead of the synthetic evaluator
    return argv;
  };
  ChildProcess a, b;
  const std::string log_a = root_ + "/retarget-a.log", log_b = root_ + "/retarget-b.log";
  ASSERT_TRUE(a.Start(args("firm-a", {0, 1}), log_a));
  ASSERT_TRUE(b.Start(args("firm-b", {2}), log_b));
  // The change lands mid-run: evaluations past kGateAfter (pool 5: within round 4 of 10)
  // wait for the gate, which opens only after the change.
  ASSERT_TRUE(WaitUntil([&] { return Status("retarget").iteration() >= 2; })) << proc::Tail(log_a);
  const wxp::v1::PositionRef old_g = Status("retarget").global_best();
  {
    auto admin = Admin();
    wxp::v1::SetUtilityWeightsRequest req;
    req.set_swarm("retarget");
    (*req.mutable_weights())["near_a"] = 0;
    (*req.mutable_weights())["near_b"] = 1;
    wxp::v1::UtilityWeights weights;
    grpc::Status s = admin->admin().SetUtilityWeights(admin->NewContext().get(), req, &weights);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(weights.version(), 2);
  }
  // An evaluation is held at the gate: the run is still going when the gate opens.
  ASSERT_TRUE(WaitUntil([&] {
    std::error_code ec;
    auto it = fs::directory_iterator(gate + "/evals", ec);
    return !ec && std::distance(it, fs::directory_iterator()) > kGateAfter;
  })) << proc::Tail(log_a);
  EXPECT_EQ(Status("retarget").state(), wxp::v1::RUNNING);
  ASSERT_TRUE(WriteFileAtomically(gate + "/open", "").ok());
  const int sa = a.Wait(absl::Minutes(3)), sb = b.Wait(absl::Minutes(3));
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << proc::Tail(log_a);
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(log_b);

  const wxp::v1::SwarmStatus status = Status("retarget");
  EXPECT_EQ(status.state(), wxp::v1::FINISHED);
  EXPECT_EQ(status.utility_weight_version(), 2);
  // Both objectives of a position, as the harness computes them.
  auto objectives = [&](const std::string& blob_id) {
    auto alpha = AlphaFromBlobBytes(Download(blob_id));
    EXPECT_TRUE(alpha.ok()) << alpha.status();
    Adapter x = *(*space)->Decode(*alpha);
    return std::pair<double, double>{NegativeRmsDistance(x.values, optimum_a.values),
                                     NegativeRmsDistance(x.values, optimum_b.values)};
  };
  const wxp::v1::PositionRef& g = status.global_best();
  const auto [g_a, g_b] = objectives(g.blob_id());
  const auto [old_a, old_b] = objectives(old_g.blob_id());
  EXPECT_NEAR(g.utility(), g_b, 1e-12);  // g ranks under the new weights...
  EXPECT_GE(g.utility(), old_b);         // ...among everything held, the old g included
  EXPECT_NEAR(old_g.utility(), old_a, 1e-12);
  EXPECT_GT(g_b, old_b);  // the old objective's g is not the new one's best
  // The history reads on under version 2, g never falling there.
  wxp::v1::GetHistoryResponse history;
  ASSERT_TRUE(proc::GetHistory(*Admin(), "retarget", &history).ok());
  std::vector<double> v2;
  for (const auto& e : history.entries()) {
    if (e.utility_weight_version() == 2) v2.push_back(e.global_best_utility());
  }
  ASSERT_GE(v2.size(), 2u);
  for (size_t k = 1; k < v2.size(); ++k) EXPECT_GE(v2[k], v2[k - 1]) << k;
  EXPECT_NEAR(v2.back(), g.utility(), 1e-12);

  auto files = Export("retarget");
  Adapter best = *(*space)->Decode(*AlphaFromBlobBytes(Download(g.blob_id())));
  EXPECT_EQ(files[kPeftWeightsFile], *SerializeAdapter(best));
}

// The two-optima harness in process, for the oracle: the script's arithmetic exactly
// (doubles summed in order), so its JSON numbers and these are the same doubles.
class TwoOptimaEvaluator : public Evaluator {
 public:
  TwoOptimaEvaluator(const Adapter& a, const Adapter& b) : a_(a.values), b_(b.values) {}
  absl::StatusOr<Scores> Evaluate(const EvaluationRequest& r) override {
    return Scores{{"near_a", NegativeRmsDistance(r.params, a_)},
                  {"near_b", NegativeRmsDistance(r.params, b_)}};
  }

 private:
  std::vector<float> a_, b_;
};

// Dynamic utility against the oracle (SPEC 4.2): the weights move from objective a to b
// between rounds 2 and 3 (the swarm paused at the barrier, so no target of round 3 is out
// before the change), and the run equals RunSwarm with the same change in utility_changes,
// byte for byte: every g utility as its round closed, under the weights then in force, and
// g's alpha. The re-reading of round 2 under b is the runner's re-ranked g.
TEST_F(CoefficientProcessTest, UtilityChangeBetweenRoundsEqualsTheRunnersUtilityChange) {
  constexpr int kChangeAt = 3, kPool = 5;
  auto space = ParticleSpace::Create(
      ExpertsInPoolOrder(), {SpaceKind::kExpertCoefficients, LoraDecoder::kLoraProduct, 0, false});
  ASSERT_TRUE(space.ok()) << space.status();
  const Adapter optimum_a = *(*space)->Decode(std::vector<float>{0.55f, 0.15f, 0.5f});
  const Adapter optimum_b = *(*space)->Decode(std::vector<float>{-0.5f, 0.8f, -0.4f});
  const std::string script = root_ + "/two_optima.py", gate = root_ + "/gate";
  ASSERT_TRUE(WriteFileAtomically(script, kTwoOptimaScript).ok());
  // Evaluations 1..kPool * kChangeAt are rounds 0..kChangeAt - 1: the last of them waits.
  const std::string eval_command =
      absl::StrCat("--eval_command=python3 ", script, " ", SaveOptimum("a", optimum_a), " ",
                   SaveOptimum("b", optimum_b), " ", gate, " ", kPool * kChangeAt - 1);
  ASSERT_TRUE(
      proc::CreateSwarm(*Admin(),
                        "spec { name: 'dyn' min_experts: 3 mode: SYNC round_deadline_seconds: 600 "
                        "utility { name: 'near_a' weight: 1 } utility { name: 'near_b' weight: 0 } "
                        "hyperparameters { seed: 99 max_iterations: 8 patience: 8 pool_size: 5 } "
                        "space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT }")
          .ok());
  auto args = [&](const std::string& name, std::vector<int> experts) {
    std::vector<std::string> argv = AgentArgs("dyn", name, experts, "");
    argv.back() = eval_command;
    return argv;
  };
  ChildProcess a, b;
  const std::string log_a = root_ + "/dyn-a.log", log_b = root_ + "/dyn-b.log";
  ASSERT_TRUE(a.Start(args("firm-a", {0, 1}), log_a));
  ASSERT_TRUE(b.Start(args("firm-b", {2}), log_b));
  auto evaluations = [&] {
    std::error_code ec;
    auto it = fs::directory_iterator(gate + "/evals", ec);
    return ec ? 0 : static_cast<int>(std::distance(it, fs::directory_iterator()));
  };
  auto control = [&](bool pause) {
    auto admin = Admin();
    wxp::v1::SwarmControlRequest req;
    req.set_swarm("dyn");
    wxp::v1::SwarmStatus st;
    grpc::Status s = pause ? admin->admin().PauseSwarm(admin->NewContext().get(), req, &st)
                           : admin->admin().ResumeSwarm(admin->NewContext().get(), req, &st);
    EXPECT_TRUE(s.ok()) << s.error_message();
  };
  ASSERT_TRUE(WaitUntil([&] { return evaluations() >= kPool * kChangeAt; })) << proc::Tail(log_a);
  control(/*pause=*/true);  // round kChangeAt's targets wait; reports still land
  EXPECT_EQ(Status("dyn").iteration(), kChangeAt - 2);
  ASSERT_TRUE(WriteFileAtomically(gate + "/open", "").ok());
  ASSERT_TRUE(WaitUntil([&] { return Status("dyn").iteration() == kChangeAt - 1; }));
  {
    auto admin = Admin();
    wxp::v1::SetUtilityWeightsRequest req;
    req.set_swarm("dyn");
    (*req.mutable_weights())["near_a"] = 0;
    (*req.mutable_weights())["near_b"] = 1;
    wxp::v1::UtilityWeights weights;
    grpc::Status s = admin->admin().SetUtilityWeights(admin->NewContext().get(), req, &weights);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(evaluations(), kPool * kChangeAt) << "nothing of round 3 ran before the change";
  control(/*pause=*/false);
  const int sa = a.Wait(absl::Minutes(3)), sb = b.Wait(absl::Minutes(3));
  ASSERT_TRUE(WIFEXITED(sa) && WEXITSTATUS(sa) == 0) << proc::Tail(log_a);
  ASSERT_TRUE(WIFEXITED(sb) && WEXITSTATUS(sb) == 0) << proc::Tail(log_b);

  TwoOptimaEvaluator two(optimum_a, optimum_b);
  FlatAdapterEvaluator adapters(optimum_a.schema, two);
  DecodingEvaluator eval(**space, adapters);
  RunnerOptions o;
  o.params.seed = 99;
  o.params.max_iterations = 8;
  o.params.patience = 8;
  o.params.pool_size = kPool;
  o.crossover_groups = (*space)->CrossoverGroups();
  o.utility_changes = {{kChangeAt, {{"near_a", 0}, {"near_b", 1}}}};
  auto oracle =
      RunSwarm((*space)->InitialPositions(),
               *UtilityFunction::Create({{"near_a", true, 1}, {"near_b", true, 0}}), eval, o);
  ASSERT_TRUE(oracle.ok()) << oracle.status();
  ASSERT_EQ(oracle->utility_changes.size(), 1u);
  EXPECT_EQ(proc::LiveReadingsOf(*Admin(), "dyn"), proc::LiveReadingsOf(*oracle));
  const wxp::v1::SwarmStatus status = Status("dyn");
  EXPECT_EQ(status.state(), wxp::v1::FINISHED);
  EXPECT_EQ(status.utility_weight_version(), 2);
  EXPECT_EQ(status.global_best().utility(), oracle->best_utility);
  EXPECT_EQ(status.global_best().blob_id(), *AlphaBlobId(oracle->best));
  wxp::v1::GetHistoryResponse history;
  ASSERT_TRUE(proc::GetHistory(*Admin(), "dyn", &history).ok());
  int rereadings = 0;
  for (const auto& e : history.entries()) {
    if (e.utility_weight_version() != 2 || e.iteration() >= kChangeAt) continue;
    ++rereadings;
    if (e.iteration() == kChangeAt - 1) {
      EXPECT_EQ(e.global_best_utility(), oracle->utility_changes[0].global_best_utility);
    }
  }
  EXPECT_EQ(rereadings, kChangeAt) << "rounds 0.." << kChangeAt - 1 << " read again under b";
}

}  // namespace
}  // namespace wxp
