// In-process tests of `wxpctl simulate` and the command dispatcher.
#include <cmath>
#include <sstream>

#include "client/admin/run_for_test.h"
#include "common/adapter.h"
#include "common/lora_synthetic.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wxp::admin {
namespace {

TEST(SimulateTest, JsonResultShowsTheSwarmBeatingEveryExpert) {
  CliOutput o = RunCli({"simulate", "--experts=4", "--params=3000", "--seed=5",
                        "--max-iterations=40", "--patience=10", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["experts"], 4);
  EXPECT_EQ(j["parameters"], 3000);
  EXPECT_EQ(j["particles"], 8);
  EXPECT_GT(j["best_utility"].get<double>(), j["best_expert_utility"].get<double>());
  EXPECT_LE(j["best_utility"].get<double>(), j["reachable_utility"].get<double>() + 1e-9);
  EXPECT_GT(j["gap_closed"].get<double>(), 0.5);
  const auto& history = j["history"];
  ASSERT_GE(history.size(), 2u);
  for (size_t k = 1; k < history.size(); ++k) {
    EXPECT_GE(history[k]["g"].get<double>(), history[k - 1]["g"].get<double>());
  }
}

TEST(SimulateTest, SameSeedSameOutput) {
  const std::vector<std::string> args = {"simulate", "--experts=3",    "--params=500",
                                         "--seed=9", "--noise=0.0001", "--json"};
  EXPECT_EQ(RunCli(args).out, RunCli(args).out);
  std::vector<std::string> other = args;
  other[3] = "--seed=10";
  EXPECT_NE(RunCli(args).out, RunCli(other).out);
}

TEST(SimulateTest, ProgressTablePrintsEveryIteration) {
  CliOutput o =
      RunCli({"simulate", "--experts=3", "--params=200", "--max-iterations=4", "--patience=10"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("g utility"), std::string::npos);
  EXPECT_NE(o.out.find("restarts"), std::string::npos);
  EXPECT_NE(o.out.find("finished after 4 iterations (max_iterations)"), std::string::npos) << o.out;
}

TEST(SimulateTest, BadFlagsAreUsageErrors) {
  CliOutput o = RunCli({"simulate", "--max-iterations=abc"});
  EXPECT_EQ(o.code, 2);
  EXPECT_NE(o.err.find("--max-iterations"), std::string::npos);
  EXPECT_EQ(RunCli({"simulate", "--experts=1"}).code, 1);  // one expert cannot grow a pool
  EXPECT_EQ(RunCli({"simulate", "--drop-n=2"}).code, 1);
  EXPECT_EQ(RunCli({"simulate", "--bogus"}).code, 2);
  CliOutput out_without_adapters = RunCli({"simulate", "--out=/tmp/x"});
  EXPECT_EQ(out_without_adapters.code, 2);
  EXPECT_EQ(RunCli({"simulate", "--help"}).code, 0);
}

// Random LoRA experts written as PEFT directories; returns their paths.
std::vector<std::string> WriteLoraExperts(const std::string& name, int count) {
  std::vector<std::string> paths;
  const std::vector<Adapter> experts = MakeRandomLoraExperts(count, 2, 24, 4, /*seed=*/2);
  for (int j = 0; j < count; ++j) {
    paths.push_back(::testing::TempDir() + "/" + name + std::to_string(j));
    EXPECT_TRUE(SaveAdapterDir(experts[j], paths.back()).ok());
  }
  return paths;
}

TEST(SimulateTest, LinearAbCoefficientsRunTheWeightsRun) {
  std::vector<std::string> weights = {"simulate", "--seed=4", "--max-iterations=20",
                                      "--patience=10", "--json"};
  for (const std::string& path : WriteLoraExperts("linear_ab", 3)) weights.push_back(path);
  std::vector<std::string> coefficients = weights;
  coefficients.insert(coefficients.end(), {"--space=coefficients", "--decoder=linear_ab"});
  CliOutput w = RunCli(weights), c = RunCli(coefficients);
  ASSERT_EQ(w.code, 0) << w.err;
  ASSERT_EQ(c.code, 0) << c.err;
  nlohmann::json jw = nlohmann::json::parse(w.out), jc = nlohmann::json::parse(c.out);
  EXPECT_EQ(jw["space"], "weights");
  EXPECT_EQ(jc["space"], "coefficients/linear_ab");
  EXPECT_EQ(jw["utility"], "flat");
  EXPECT_EQ(jc["utility"], "flat");
  EXPECT_EQ(jc["dimension"], 3);
  EXPECT_EQ(jw["dimension"], jw["parameters"]);
  EXPECT_EQ(jw["iterations"], jc["iterations"]);
  EXPECT_EQ(jw["best_expert_utility"], jc["best_expert_utility"]);
  const double uw = jw["best_utility"], uc = jc["best_utility"];
  EXPECT_NEAR(uw, uc, 1e-4 * std::fabs(uw));
}

TEST(SimulateTest, ProductSpacesRunOnRandomLoraExpertsAndWriteTheBest) {
  const std::string out = ::testing::TempDir() + "/svd_best";
  CliOutput o = RunCli({"simulate", "--experts=3", "--params=2000", "--space=coefficients",
                        "--decoder=lora_product_svd", "--svd-rank=4", "--per-module",
                        "--max-iterations=15", "--json", "--out=" + out});
  ASSERT_EQ(o.code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["space"], "coefficients/lora_product_svd(k=4)/per_module");
  EXPECT_EQ(j["utility"], "delta_w");
  EXPECT_EQ(j["dimension"], 6);  // 3 experts x 2 modules
  EXPECT_EQ(j["reachable_exact"], false);
  EXPECT_GE(j["best_utility"].get<double>(), j["best_expert_utility"].get<double>());
  absl::StatusOr<Adapter> best = LoadAdapter(out);
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ(best->schema.size(), 4u);
  EXPECT_EQ(best->schema.tensor(0).shape[0], 4);  // rank k

  o = RunCli({"simulate", "--experts=3", "--params=2000", "--space=coefficients",
              "--max-iterations=15", "--json"});
  ASSERT_EQ(o.code, 0) << o.err;
  j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["space"], "coefficients/lora_product");
  EXPECT_EQ(j["reachable_exact"], true);
  EXPECT_LE(j["best_utility"].get<double>(), j["reachable_utility"].get<double>() + 1e-9);
  EXPECT_GE(j["best_utility"].get<double>(), j["best_expert_utility"].get<double>());

  o = RunCli(
      {"simulate", "--experts=3", "--params=2000", "--utility=delta_w", "--max-iterations=5"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_THAT(o.out, ::testing::HasSubstr("in the weights space, utility delta_w"));
  EXPECT_THAT(o.out, ::testing::HasSubstr("product-span optimum"));
}

TEST(SimulateTest, SpaceFlagsAreChecked) {
  EXPECT_EQ(RunCli({"simulate", "--space=tokens"}).code, 2);
  EXPECT_EQ(RunCli({"simulate", "--decoder=lora_product"}).code, 2);  // weights space
  EXPECT_EQ(RunCli({"simulate", "--per-module"}).code, 2);
  EXPECT_EQ(RunCli({"simulate", "--space=coefficients", "--decoder=cat"}).code, 2);
  EXPECT_EQ(RunCli({"simulate", "--space=coefficients", "--utility=flat"}).code, 2);
  EXPECT_EQ(RunCli({"simulate", "--utility=loss"}).code, 2);
  CliOutput no_rank = RunCli({"simulate", "--space=coefficients", "--decoder=lora_product_svd",
                              "--experts=2", "--params=100"});
  EXPECT_EQ(no_rank.code, 1);
  EXPECT_THAT(no_rank.err, ::testing::HasSubstr("svd_rank >= 1"));
  EXPECT_EQ(RunCli({"simulate", "--space=coefficients", "--rank=0"}).code, 1);
}

TEST(RunTest, UnknownCommandsAreUsageErrors) {
  EXPECT_EQ(RunCli({}).code, 2);
  EXPECT_EQ(RunCli({"frobnicate"}).code, 2);
  EXPECT_EQ(RunCli({"adapter"}).code, 2);
  EXPECT_EQ(RunCli({"adapter", "eat"}).code, 2);
  CliOutput help = RunCli({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("adapter inspect"), std::string::npos);
}

}  // namespace
}  // namespace wxp::admin
