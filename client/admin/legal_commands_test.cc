// `wxpctl legal` dispatch and argument handling (the cheap paths; client/legal's tests cover
// training and scoring), and `legal train`, wxp-agent's example train_command, against the
// built-in local trainer it must equal.
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/admin/run_for_test.h"
#include "client/legal/evaluator.h"
#include "client/legal/trainer.h"
#include "common/adapter.h"
#include "common/dp_record.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wxp::admin {
namespace {

TEST(LegalCommandsTest, ShardsListsLicenceFamilies) {
  CliOutput r = RunCli({"legal", "shards"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* family : {"GPL", "LGPL", "GFDL", "MPL", "Apache"}) {
    EXPECT_NE(r.out.find(std::string("\n") + family + " "), std::string::npos) << family;
  }
}

TEST(LegalCommandsTest, UsageErrors) {
  EXPECT_EQ(RunCli({"legal"}).code, 2);
  EXPECT_EQ(RunCli({"legal", "frobnicate"}).code, 2);
  EXPECT_EQ(RunCli({"legal", "finetune", "--work_dir", "/tmp"}).code, 2);  // no --shard/--out
  EXPECT_EQ(RunCli({"legal", "eval", "--work_dir", "/tmp"}).code, 2);      // no --adapter
  EXPECT_EQ(RunCli({"legal", "pretrain", "--threads", "0"}).code, 2);
  CliOutput arch = RunCli({"legal", "pretrain", "--architecture=rnn"});
  EXPECT_EQ(arch.code, 2);
  EXPECT_NE(arch.err.find("unknown architecture 'rnn' (mlp or transformer)"), std::string::npos)
      << arch.err;
  CliOutput help = RunCli({"legal", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("finetune"), std::string::npos);
}

TEST(LegalCommandsTest, BadCorpusFailsWithOneLine) {
  CliOutput r = RunCli({"legal", "shards", "--corpus_dir", "/nonexistent/wxp"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.rfind("wxpctl: ", 0), 0u);
  CliOutput e = RunCli({"legal", "eval", "--work_dir", "/tmp", "--adapter", "/nonexistent/a"});
  EXPECT_EQ(e.code, 1);
}

TEST(LegalCommandsTest, TrainUsageErrors) {
  for (const char* v :
       {"WXP_TRAIN_INPUT", "WXP_TRAIN_OUTPUT", "WXP_TRAIN_STEPS", "WXP_TRAIN_LEARNING_RATE",
        "WXP_TRAIN_BATCH", "WXP_TRAIN_SEED", "WXP_TRAIN_DP_EPSILON", "WXP_TRAIN_DP_DELTA",
        "WXP_TRAIN_DP_CLIP", "WXP_TRAIN_DP_MAX_STEPS"}) {
    unsetenv(v);
  }
  const std::vector<std::string> settings = {"--steps",    "2",   "--learning_rate", "0.01",
                                             "--batch",    "8",   "--seed",          "1",
                                             "--work_dir", "/tmp"};
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"legal", "train"};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCli(args);
  };
  std::vector<std::string> no_data = {"in", "out"};
  no_data.insert(no_data.end(), settings.begin(), settings.end());
  EXPECT_EQ(run(no_data).code, 2);  // neither --shard nor --data
  std::vector<std::string> both = no_data;
  both.insert(both.end(), {"--shard", "GPL", "--data", "f"});
  EXPECT_EQ(run(both).code, 2);
  EXPECT_EQ(run({"in", "out", "--shard", "GPL"}).code, 2);  // no settings, none in the env
  std::vector<std::string> no_out = {"in", "--shard", "GPL"};
  no_out.insert(no_out.end(), settings.begin(), settings.end());
  CliOutput r = run(no_out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("IN and OUT"), std::string::npos) << r.err;
  std::vector<std::string> bad_lr = {"in",      "out", "--shard", "GPL", "--learning_rate", "nan",
                                     "--steps", "1",   "--batch", "1",   "--seed",          "1"};
  EXPECT_EQ(run(bad_lr).code, 2);
  // DP (a private swarm's settings): all four or none, each in range.
  std::vector<std::string> dp = {"in", "out", "--shard", "GPL"};
  dp.insert(dp.end(), settings.begin(), settings.end());
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"--dp-epsilon", "4"},
           {"--dp-epsilon", "0", "--dp-delta", "1e-5", "--dp-clip", "1", "--dp-max-steps", "10"},
           {"--dp-epsilon", "4", "--dp-delta", "1", "--dp-clip", "1", "--dp-max-steps", "10"},
           {"--dp-epsilon", "4", "--dp-delta", "1e-5", "--dp-clip", "-1", "--dp-max-steps", "10"},
           {"--dp-epsilon", "4", "--dp-delta", "1e-5", "--dp-clip", "1", "--dp-max-steps", "1"}}) {
    std::vector<std::string> args = dp;
    args.insert(args.end(), bad.begin(), bad.end());
    r = run(args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(bad, " ");
    EXPECT_NE(r.err.find("--dp-"), std::string::npos) << r.err;
  }
  EXPECT_EQ(RunCli({"legal", "train", "--help"}).code, 0);
}

// The example train_command trains exactly as wxp-agent's built-in trainer (LegalTrainer on
// the shard's train split): same seed and settings, same weights, bit for bit; the settings
// may come from the WXP_TRAIN_* variables the agent sets instead of flags.
TEST(LegalCommandsTest, TrainEqualsTheBuiltInTrainer) {
  const std::string root = std::string(getenv("TEST_TMPDIR")) + "/legal_train";
  legal::LegalOptions o;
  o.work_dir = root + "/base";
  absl::StatusOr<legal::LegalSetup> setup = legal::LoadLegalSetup(o);
  ASSERT_TRUE(setup.ok()) << setup.status();
  legal::FineTuneOptions ft;
  ft.steps = 10;
  absl::StatusOr<legal::LegalExpert> expert =
      legal::FineTuneLegalExpert(*setup->model, setup->corpus, "MPL", ft);
  ASSERT_TRUE(expert.ok()) << expert.status();
  const std::string in = root + "/in";
  ASSERT_TRUE(SaveAdapterDir(expert->adapter, in).ok());

  const uint64_t seed = 18446744073709551557ull;  // the engine's seeds use all 64 bits
  CliOutput r = RunCli({"legal", "train", in, root + "/out", "--work_dir", o.work_dir, "--shard",
                        "GPL", "--steps", "3", "--learning_rate", "0.005", "--batch", "16",
                        "--seed", std::to_string(seed)});
  ASSERT_EQ(r.code, 0) << r.err;

  absl::StatusOr<std::unique_ptr<legal::LegalTrainer>> trainer =
      legal::MakeLegalTrainer(setup->model, setup->corpus, "GPL");
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  TrainingRequest req;
  req.seed = seed;
  req.steps = 3;
  req.learning_rate = 0.005;
  req.batch = 16;
  req.params = expert->adapter.values;
  absl::StatusOr<std::vector<float>> want = (*trainer)->Train(req);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_NE(*want, expert->adapter.values);  // it did train

  absl::StatusOr<Adapter> out = LoadAdapter(root + "/out");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->schema, expert->adapter.schema);
  EXPECT_EQ(out->config_json, expert->adapter.config_json);
  EXPECT_EQ(out->values, *want);

  // As wxp-agent runs it: IN, OUT and the settings from the environment.
  setenv("WXP_TRAIN_INPUT", in.c_str(), 1);
  setenv("WXP_TRAIN_OUTPUT", (root + "/out-env").c_str(), 1);
  setenv("WXP_TRAIN_STEPS", "3", 1);
  setenv("WXP_TRAIN_LEARNING_RATE", "0.0050000000000000001", 1);  // %.17g of 0.005
  setenv("WXP_TRAIN_BATCH", "16", 1);
  setenv("WXP_TRAIN_SEED", std::to_string(seed).c_str(), 1);
  r = RunCli({"legal", "train", "--work_dir", o.work_dir, "--shard", "GPL"});
  ASSERT_EQ(r.code, 0) << r.err;
  absl::StatusOr<Adapter> out_env = LoadAdapter(root + "/out-env");
  ASSERT_TRUE(out_env.ok()) << out_env.status();
  EXPECT_EQ(out_env->values, *want);
  for (const char* v : {"WXP_TRAIN_INPUT", "WXP_TRAIN_OUTPUT", "WXP_TRAIN_STEPS",
                        "WXP_TRAIN_LEARNING_RATE", "WXP_TRAIN_BATCH", "WXP_TRAIN_SEED"}) {
    unsetenv(v);
  }

  // Not the model's LoRA: a clear failure, nothing written.
  Adapter foreign;
  foreign.schema = Schema({{"x.lora_A.weight", DType::kF32, {2, 3}}});
  foreign.values.assign(6, 0.f);
  ASSERT_TRUE(SaveAdapterDir(foreign, root + "/foreign").ok());
  r = RunCli({"legal", "train", root + "/foreign", root + "/out-foreign", "--work_dir", o.work_dir,
              "--shard", "GPL", "--steps", "1", "--learning_rate", "0.01", "--batch", "4", "--seed",
              "1"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("not a LoRA of the built-in model"), std::string::npos) << r.err;

  // Several adapters on both splits in one process (the model loaded once): one line each,
  // in split then argument order, with the scores one adapter per process gets. A foreign
  // adapter among them is refused, naming it, before anything is printed.
  CliOutput one = RunCli(
      {"legal", "eval", "--work_dir", o.work_dir, "--adapter", root + "/out", "--split", "test"});
  ASSERT_EQ(one.code, 0) << one.err;
  CliOutput many =
      RunCli({"legal", "eval", "--work_dir", o.work_dir, "--split", "dev,test", in, root + "/out"});
  ASSERT_EQ(many.code, 0) << many.err;
  std::vector<std::string> lines = absl::StrSplit(many.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << many.out;
  const std::vector<std::pair<std::string, std::string>> order = {
      {in, "dev"}, {root + "/out", "dev"}, {in, "test"}, {root + "/out", "test"}};
  for (size_t i = 0; i < lines.size(); ++i) {
    const nlohmann::json j = nlohmann::json::parse(lines[i]);
    EXPECT_EQ(j["adapter"], order[i].first) << i;
    EXPECT_EQ(j["split"], order[i].second) << i;
  }
  EXPECT_EQ(nlohmann::json::parse(lines[3])["scores"], nlohmann::json::parse(one.out)["scores"]);
  EXPECT_NE(nlohmann::json::parse(lines[2])["scores"], nlohmann::json::parse(one.out)["scores"]);
  r = RunCli({"legal", "eval", "--work_dir", o.work_dir, in, root + "/foreign"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find(root + "/foreign: not a LoRA of this base model"), std::string::npos)
      << r.err;
  EXPECT_EQ(RunCli({"legal", "eval", "--work_dir", o.work_dir, in, "--split", "train"}).code, 2);
}

// A transformer expert (a tiny one, written here) as `wxpctl adapter inspect` shows it: a
// PEFT LoRA of a Llama-shaped model. The default MLP refuses to score or train it, naming
// the base it was fine-tuned from.
TEST(LegalCommandsTest, TransformerAdaptersAreInspectedAndNotTakenForTheMlps) {
  const std::string root = std::string(getenv("TEST_TMPDIR")) + "/legal_transformer";
  legal::LegalOptions o;
  o.work_dir = root + "/base";
  o.model = legal::ModelConfig::Defaults(legal::Architecture::kTransformer);
  o.model.context = 16;
  o.model.embed = 16;
  o.model.hidden = 16;
  o.model.layers = 1;
  o.model.heads = 2;
  o.model.pretrain_steps = 5;
  absl::StatusOr<legal::LegalSetup> setup = legal::LoadLegalSetup(o);
  ASSERT_TRUE(setup.ok()) << setup.status();
  legal::FineTuneOptions ft;
  ft.steps = 2;
  absl::StatusOr<legal::LegalExpert> e =
      legal::FineTuneLegalExpert(*setup->model, setup->corpus, "GPL", ft);
  ASSERT_TRUE(e.ok()) << e.status();
  const std::string dir = root + "/expert";
  ASSERT_TRUE(SaveAdapterDir(e->adapter, dir).ok());

  CliOutput r = RunCli({"adapter", "inspect", dir});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("LORA r=8 alpha=16 targets=[q_proj,k_proj,v_proj,o_proj] base=" +
                       setup->model->base_model_name()),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight"),
            std::string::npos)
      << r.out;
  r = RunCli({"adapter", "inspect", "--json", dir});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"base_model_name_or_path\": \"wxp-legal-byte-transformer-"),
            std::string::npos)
      << r.out;

  const std::string mlp_dir = std::string(getenv("TEST_TMPDIR")) + "/legal_train/base";
  r = RunCli({"legal", "eval", "--work_dir", mlp_dir, "--adapter", dir});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("fine-tuned from base model wxp-legal-byte-transformer-"), std::string::npos)
      << r.err;
  r = RunCli({"legal", "train", dir, root + "/out", "--work_dir", mlp_dir, "--shard", "GPL",
              "--steps", "1", "--learning_rate", "0.01", "--batch", "4", "--seed", "1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("(transformer), not from this one"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace wxp::admin

namespace wxp::admin {
namespace {

// `legal finetune --dp-epsilon/--dp-delta` (SPEC 12) records the budget in the adapter;
// `adapter inspect` shows it, and "not private" for an expert trained without.
TEST(LegalCommandsTest, DpFinetuneRecordsTheBudgetAndInspectShowsIt) {
  const std::string root = std::string(getenv("TEST_TMPDIR")) + "/legal_dp";
  const std::string work = root + "/base";
  CliOutput r = RunCli({"legal", "finetune", "--work_dir", work, "--shard", "GPL", "--out",
                        root + "/dp", "--steps", "4", "--batch", "16", "--dp-epsilon", "4",
                        "--dp-delta", "1e-5", "--dp-clip", "0.5"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("differential privacy: eps=4.00 delta=1e-05 sigma="), std::string::npos)
      << r.out;
  absl::StatusOr<Adapter> a = LoadAdapter(root + "/dp");
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<std::optional<dp::PrivacyRecord>> rec = dp::FindPrivacyRecord(a->metadata);
  ASSERT_TRUE(rec.ok() && rec->has_value()) << rec.status();
  EXPECT_LE((*rec)->epsilon, 4);
  EXPECT_EQ((*rec)->phases[0].clip_norm, 0.5);
  EXPECT_EQ((*rec)->phases[0].steps, 4);

  CliOutput inspect = RunCli({"adapter", "inspect", root + "/dp"});
  ASSERT_EQ(inspect.code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("differential privacy eps=4.00 delta=1e-05 sigma="), std::string::npos)
      << inspect.out;
  EXPECT_NE(inspect.out.find("C=0.5"), std::string::npos) << inspect.out;
  CliOutput json = RunCli({"adapter", "inspect", "--json", root + "/dp"});
  ASSERT_EQ(json.code, 0) << json.err;
  nlohmann::json j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["differential_privacy"]["epsilon"].get<double>(), (*rec)->epsilon);
  EXPECT_EQ(j["differential_privacy"]["accountant"], "rdp-poisson-sgm");

  r = RunCli({"legal", "finetune", "--work_dir", work, "--shard", "GPL", "--out", root + "/plain",
              "--steps", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  inspect = RunCli({"adapter", "inspect", root + "/plain"});
  EXPECT_NE(inspect.out.find("differential privacy not private"), std::string::npos) << inspect.out;
  json = RunCli({"adapter", "inspect", "--json", root + "/plain"});
  EXPECT_TRUE(nlohmann::json::parse(json.out)["differential_privacy"].is_null());
}

TEST(LegalCommandsTest, DpFinetuneRefusesBadBudgets) {
  const std::string root = std::string(getenv("TEST_TMPDIR")) + "/legal_dp_bad";
  auto run = [&](std::vector<std::string> dp) {
    std::vector<std::string> args = {"legal", "finetune", "--work_dir",  root + "/base", "--shard",
                                     "GPL",   "--out",    root + "/out", "--steps",      "2"};
    args.insert(args.end(), dp.begin(), dp.end());
    return RunCli(args);
  };
  CliOutput r = run({"--dp-epsilon", "0", "--dp-delta", "1e-5"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--dp-epsilon must be > 0"), std::string::npos) << r.err;
  r = run({"--dp-epsilon", "-2", "--dp-delta", "1e-5"});
  EXPECT_EQ(r.code, 2);
  r = run({"--dp-epsilon", "inf", "--dp-delta", "1e-5"});
  EXPECT_EQ(r.code, 2);
  r = run({"--dp-epsilon", "4", "--dp-delta", "1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--dp-delta must be in (0, 1)"), std::string::npos) << r.err;
  r = run({"--dp-epsilon", "4", "--dp-delta", "0"});
  EXPECT_EQ(r.code, 2);
  r = run({"--dp-epsilon", "4"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("go together"), std::string::npos) << r.err;
  r = run({"--dp-epsilon", "4", "--dp-delta", "1e-5", "--dp-clip", "0"});
  EXPECT_EQ(r.code, 2);
  // delta >= 1/N needs the data: refused after loading it, naming N.
  r = run({"--dp-epsilon", "4", "--dp-delta", "0.01"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("DP delta must be below 1/N"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(root + "/out"));
}

}  // namespace
}  // namespace wxp::admin
