// Token swarms federated (SPEC 4.5): the real wxp-server and wxp-agent processes on
// loopback, two firms whose experts are whole models of different architectures (an MLP
// and a transformer, neither at its default sizes). Each agent uploads its expert's adapter
// and base model, fetches the other's once, and exchanges only alpha.
//  - The federated run equals the in-process runner (RunSwarm with the same evaluator over
//    the same models) byte for byte: every g utility and g's alpha; the export is the
//    manifest of g, naming both experts' blobs and architectures; `wxpctl export` writes it
//    with the experts' blobs, and `wxpctl manifest eval` on that directory scores g as the
//    swarm did.
//  - An expert whose base model carries a malformed architecture description is refused at
//    its join, saying why.
#include <sys/wait.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/legal/evaluator.h"
#include "client/legal/mixture_evaluator.h"
#include "client/net/connection.h"
#include "common/adapter.h"
#include "common/alpha_blob.h"
#include "common/file_util.h"
#include "common/model_description.h"
#include "common/particle_space.h"
#include "common/runner.h"
#include "common/sha256.h"
#include "common/token_manifest.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/processes.h"
#include "tests/testing/swarm_admin.h"

namespace wxp {
namespace {

using proc::ChildProcess;
using proc::Runfile;
using proc::ServerProcess;

legal::ModelConfig SmallMlp() {
  legal::ModelConfig c;
  c.context = 10;
  c.embed = 10;
  c.hidden = 64;
  c.lora_rank = 4;
  c.lora_alpha = 8;
  c.pretrain_steps = 150;
  return c;
}

legal::ModelConfig SmallTransformer() {
  legal::ModelConfig c = legal::ModelConfig::Defaults(legal::Architecture::kTransformer);
  c.context = 32;
  c.embed = 32;
  c.hidden = 64;
  c.layers = 1;
  c.heads = 4;
  c.lora_rank = 4;
  c.lora_alpha = 8;
  c.pretrain_steps = 80;
  c.pretrain_batch = 128;
  return c;
}

struct Firm {
  const char* name;
  const char* shard;
};
constexpr Firm kFirms[] = {{"firm-gpl", "GPL"}, {"firm-mpl", "MPL"}};

class TokenProcessTest : public ::testing::Test {
 protected:
  // One expert per firm, each on its own base model and architecture.
  static void SetUpTestSuite() {
    shared_ = new std::string(proc::FreshDir(::testing::TempDir() + "/tok-shared"));
    families_ = new std::vector<std::string>();
    int seed = 1;
    for (const legal::ModelConfig& config : {SmallMlp(), SmallTransformer()}) {
      legal::LegalOptions o;
      o.work_dir = *shared_ + "/vendor";
      o.model = config;
      absl::StatusOr<legal::LegalSetup> setup = legal::LoadLegalSetup(o);
      ASSERT_TRUE(setup.ok()) << setup.status();
      const Firm& firm = kFirms[seed - 1];
      legal::FineTuneOptions ft;
      ft.steps = 30;
      ft.seed = ft.init_seed = seed++;
      absl::StatusOr<legal::LegalExpert> e =
          legal::FineTuneLegalExpert(*setup->model, setup->corpus, firm.shard, ft);
      ASSERT_TRUE(e.ok()) << e.status();
      ASSERT_TRUE(legal::SaveTokenExpertDir(*setup->model, e->adapter, ExpertDir(firm)).ok());
      families_->push_back(setup->model->base_model_name());
    }
  }
  static void TearDownTestSuite() {
    delete shared_;
    delete families_;
  }
  static std::string ExpertDir(const Firm& f) {
    return absl::StrCat(*shared_, "/expert-", f.shard);
  }

  void SetUp() override {
    root_ = proc::FreshDir(::testing::TempDir() + "/" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    server_ =
        std::make_unique<ServerProcess>(root_ + "/server", std::vector<std::string>{"--plaintext"});
    ASSERT_GT(server_->Start(), 0) << proc::Tail(server_->log_path());
    admin_ = proc::ConnectAs(server_->address(), "ops", Role::kAdmin);
    ASSERT_NE(admin_, nullptr);
  }

  // A sync round ranks reports in arrival order where the runner ranks them by particle, so
  // the two agree on g only without ties in utility. The test avoids them: the dev loss
  // (continuous, where char_acc is a count) under LOG_LINEAR, where distinct alphas give
  // distinct models. (MIXTURE clips negative coefficients: a crossover child that
  // extrapolates past an expert is that expert alone, tying with it exactly.)
  void CreateSwarm(const std::string& name, const std::string& combination) {
    std::string families;
    for (const std::string& f : *families_)
      absl::StrAppend(&families, " expert_families: '", f, "'");
    const grpc::Status s = proc::CreateSwarm(
        *admin_,
        absl::StrCat(
            "spec { name: '", name,
            "' min_experts: 2 mode: SYNC "
            "round_deadline_seconds: 600 utility { name: 'loss' direction: MINIMIZE weight: 1 } "
            "hyperparameters { seed: 7 max_iterations: 3 patience: 10 "
            "pool_size: 4 } space: TOKEN_MIXTURE combination: ",
            combination, families, " }"));
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // Starts firm `name`'s wxp-agent with the expert in `expert_dir` and an empty base
  // directory: every base model it uses arrives as a blob.
  void StartAgent(ChildProcess& agent, const std::string& name, const std::string& swarm,
                  const std::string& expert_dir) {
    const std::string config = absl::StrCat(
        "server_address: '", server_->address(), "' plaintext: true plaintext_identity: '", name,
        "' swarm: '", swarm, "' capacity: 4 work_dir: '", root_, "/", name,
        "' builtin_legal_text { base_dir: '", root_, "/", name, "-base' }\nexpert_paths: '",
        expert_dir, "'\n");
    const std::string path = root_ + "/" + name + ".textproto";
    ASSERT_TRUE(WriteFileAtomically(path, config).ok());
    ASSERT_TRUE(agent.Start({Runfile("client/agent/wxp-agent"), "--config=" + path},
                            root_ + "/" + name + ".log"));
  }

  std::pair<int, std::string> AwaitExit(ChildProcess& agent, const std::string& name) {
    const int st = agent.Wait(absl::Minutes(10));
    return {st, proc::Tail(root_ + "/" + name + ".log", 1 << 20)};
  }

  // The exported files by path.
  std::map<std::string, std::string> Export(const std::string& swarm) {
    wxp::v1::ExportBestRequest req;
    req.set_swarm(swarm);
    auto ctx = admin_->NewContext();
    auto reader = admin_->admin().ExportBest(ctx.get(), req);
    std::map<std::string, std::string> files;
    wxp::v1::ExportChunk chunk;
    while (reader->Read(&chunk)) files[chunk.path()] += chunk.chunk().data();
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return files;
  }

  static std::string* shared_;
  static std::vector<std::string>* families_;
  std::string root_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<client::Connection> admin_;
};

std::string* TokenProcessTest::shared_ = nullptr;
std::vector<std::string>* TokenProcessTest::families_ = nullptr;

TEST_F(TokenProcessTest, FederatedTokenSwarmEqualsTheInProcessRunner) {
  CreateSwarm("tokens", "LOG_LINEAR");
  ChildProcess a, b;
  StartAgent(a, "firm-gpl", "tokens", ExpertDir(kFirms[0]));
  StartAgent(b, "firm-mpl", "tokens", ExpertDir(kFirms[1]));
  const auto [st_a, log_a] = AwaitExit(a, "firm-gpl");
  const auto [st_b, log_b] = AwaitExit(b, "firm-mpl");
  ASSERT_TRUE(WIFEXITED(st_a) && WEXITSTATUS(st_a) == 0) << log_a;
  ASSERT_TRUE(WIFEXITED(st_b) && WEXITSTATUS(st_b) == 0) << log_b;
  const std::string logs = log_a + log_b;
  EXPECT_EQ(logs.find("event=evaluation_failed"), std::string::npos) << logs;
  EXPECT_NE(logs.find("space=token_mixture/log_linear"), std::string::npos) << logs;

  // The oracle: the same models, in pool order (ascending adapter blob id, as alpha's
  // entries), the same evaluator settings (dev split, two threads) and the same spec.
  absl::StatusOr<legal::Corpus> corpus = legal::Corpus::Load("");
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  std::vector<std::pair<std::string, legal::MixtureExpertFiles>> files;
  for (const Firm& f : kFirms) {
    const std::string dir = ExpertDir(f);
    files.push_back({*Sha256File(dir + "/" + kPeftWeightsFile),
                     {dir + "/" + kExpertBaseModelFile, dir + "/" + kPeftWeightsFile,
                      *ReadFile(dir + "/" + kPeftConfigFile)}});
  }
  std::sort(files.begin(), files.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<legal::MixtureExpert> experts;
  std::vector<Adapter> adapters;
  std::vector<std::string> ids;
  std::vector<std::string> architectures;
  for (const auto& [id, f] : files) {
    absl::StatusOr<legal::MixtureExpert> e =
        legal::LoadMixtureExpert(f, *corpus, root_ + "/oracle-base", 2);
    ASSERT_TRUE(e.ok()) << e.status();
    ids.push_back(id);
    adapters.push_back(e->adapter);
    architectures.push_back(legal::ArchitectureName(e->model->config().architecture));
    experts.push_back(*std::move(e));
  }
  absl::StatusOr<std::unique_ptr<legal::MixtureEvaluator>> ev = legal::MixtureEvaluator::Create(
      experts, *corpus, legal::Split::kDev, TokenCombination::kLogLinear);
  ASSERT_TRUE(ev.ok()) << ev.status();
  ParticleSpaceOptions so;
  so.kind = SpaceKind::kTokenMixture;
  so.combination = TokenCombination::kLogLinear;
  absl::StatusOr<std::unique_ptr<ParticleSpace>> space = ParticleSpace::Create(adapters, so);
  ASSERT_TRUE(space.ok()) << space.status();
  RunnerOptions o;
  o.params.seed = 7;
  o.params.max_iterations = 3;
  o.params.patience = 10;
  o.params.pool_size = 4;
  o.expert_ids = ids;
  o.space = SpaceKind::kTokenMixture;
  absl::StatusOr<RunResult> oracle = RunSwarm(
      (*space)->InitialPositions(), *UtilityFunction::Create({{"loss", false, 1.0}}), **ev, o);
  ASSERT_TRUE(oracle.ok()) << oracle.status();

  EXPECT_EQ(proc::GlobalBestHistoryOf(*admin_, "tokens"), proc::GlobalBestHistoryOf(*oracle));
  const wxp::v1::SwarmStatus status = proc::SwarmStatusOf(*admin_, "tokens");
  EXPECT_EQ(status.state(), wxp::v1::FINISHED);
  EXPECT_EQ(status.space(), wxp::v1::TOKEN_MIXTURE);
  EXPECT_EQ(status.combination(), wxp::v1::LOG_LINEAR);
  EXPECT_EQ(status.global_best().utility(), oracle->best_utility);
  EXPECT_EQ(status.global_best().blob_id(), *AlphaBlobId(oracle->best));

  // The export is g's manifest: both experts' blobs and architectures, alpha and weights.
  std::map<std::string, std::string> exported = Export("tokens");
  ASSERT_EQ(exported.size(), 1u);
  absl::StatusOr<TokenManifest> m = ParseTokenManifest(exported[kTokenManifestFile]);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->alpha, oracle->best);
  EXPECT_EQ(m->combination, TokenCombination::kLogLinear);
  EXPECT_EQ(m->utility, oracle->best_utility);
  ASSERT_EQ(m->experts.size(), 2u);
  for (size_t j = 0; j < 2; ++j) {
    EXPECT_EQ(m->experts[j].adapter_blob_id, ids[j]);
    EXPECT_EQ(m->experts[j].architecture.architecture, architectures[j]);
    EXPECT_EQ(m->experts[j].base_model_blob_id, *Sha256File(files[j].second.base_model_path));
  }
  // And it scores what the swarm reported for g.
  absl::StatusOr<Scores> again = (*ev)->Evaluate({0, 0, m->alpha});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(-again->at("loss"), oracle->best_utility);
  EXPECT_EQ(-again->at("loss"), m->utility);

  // wxpctl export writes the manifest with every expert's blobs beside it, and wxpctl
  // manifest inspect / eval read that directory offline; eval scores g as the swarm did.
  const std::string out_dir = root_ + "/exported";
  auto ctl = [&](std::vector<std::string> args, const std::string& name) {
    ChildProcess p;
    args.insert(args.begin(), Runfile("client/wxpctl"));
    const std::string log = root_ + "/" + name + ".log";
    EXPECT_TRUE(p.Start(args, log, {"WXPCTL_CONFIG="}));
    const int st = p.Wait(absl::Minutes(10));
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << proc::Tail(log, 1 << 20);
    return proc::Tail(log, 1 << 20);
  };
  ctl({"export", "tokens", "--out", out_dir, "--server", server_->address(), "--plaintext",
       "--identity", "ops"},
      "ctl-export");
  EXPECT_EQ(*ReadFile(out_dir + "/" + kTokenManifestFile), exported[kTokenManifestFile]);
  for (const TokenManifestExpert& e : m->experts) {
    for (const std::string& id : {e.adapter_blob_id, e.base_model_blob_id}) {
      EXPECT_EQ(*Sha256File(out_dir + "/" + id + ".safetensors"), id);
    }
  }
  const std::string inspected = ctl({"manifest", "inspect", out_dir}, "ctl-inspect");
  EXPECT_NE(inspected.find("2 experts, combination log_linear"), std::string::npos) << inspected;
  EXPECT_NE(inspected.find("transformer"), std::string::npos) << inspected;
  const std::string scored =
      ctl({"manifest", "eval", out_dir, "--work_dir", root_ + "/ctl-work"}, "ctl-eval");
  const size_t at = scored.find("{\"scores\"");
  ASSERT_NE(at, std::string::npos) << scored;
  const nlohmann::json j = nlohmann::json::parse(scored.substr(at, scored.find('\n', at) - at));
  EXPECT_EQ(-j["scores"]["loss"].get<double>(), oracle->best_utility);
}

TEST_F(TokenProcessTest, MalformedArchitectureDescriptionIsRefusedAtJoin) {
  CreateSwarm("bad-arch", "MIXTURE");
  // The GPL expert, but its base model file says it is an "rnn".
  const std::string dir = root_ + "/expert-bad";
  absl::StatusOr<Adapter> adapter = LoadAdapter(ExpertDir(kFirms[0]));
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  absl::StatusOr<Adapter> base = LoadAdapter(ExpertDir(kFirms[0]) + "/" + kExpertBaseModelFile);
  ASSERT_TRUE(base.ok()) << base.status();
  for (auto& [k, v] : base->metadata) {
    if (k == kModelArchitectureKey) v = "rnn";
  }
  ASSERT_TRUE(MakeDirs(dir).ok());
  ASSERT_TRUE(SaveSafetensors(*base, dir + "/" + kExpertBaseModelFile).ok());
  nlohmann::json config = nlohmann::json::parse(*adapter->config_json);
  config[kBaseModelBlobKey] = *Sha256File(dir + "/" + kExpertBaseModelFile);
  adapter->config_json = config.dump();
  ASSERT_TRUE(SaveAdapterDir(*adapter, dir).ok());

  ChildProcess a;
  StartAgent(a, "firm-bad", "bad-arch", dir);
  const auto [st, log] = AwaitExit(a, "firm-bad");
  EXPECT_FALSE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << log;
  EXPECT_NE(log.find("unknown architecture 'rnn'"), std::string::npos) << log;
  EXPECT_EQ(proc::SwarmStatusOf(*admin_, "bad-arch").experts_joined(), 0);
}

}  // namespace
}  // namespace wxp
