// In-process tests of `wxpctl simulate` and the command dispatcher.
#include <sstream>

#include "client/admin/run_for_test.h"
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
  const std::vector<std::string> args = {"simulate", "--experts=3", "--params=500", "--seed=9",
                                         "--noise=0.0001", "--json"};
  EXPECT_EQ(RunCli(args).out, RunCli(args).out);
  std::vector<std::string> other = args;
  other[3] = "--seed=10";
  EXPECT_NE(RunCli(args).out, RunCli(other).out);
}

TEST(SimulateTest, ProgressTablePrintsEveryIteration) {
  CliOutput o = RunCli({"simulate", "--experts=3", "--params=200", "--max-iterations=4",
                     "--patience=10"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("g utility"), std::string::npos);
  EXPECT_NE(o.out.find("restarts"), std::string::npos);
  EXPECT_NE(o.out.find("finished after 4 iterations (max_iterations)"), std::string::npos)
      << o.out;
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
