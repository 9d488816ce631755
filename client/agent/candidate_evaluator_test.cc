#include "client/agent/candidate_evaluator.h"

#include <filesystem>
#include <fstream>

#include "common/adapter.h"
#include "common/file_util.h"
#include "common/synthetic.h"
#include "gtest/gtest.h"

namespace wxp::agent {
namespace {
namespace fs = std::filesystem;

class CandidateEvaluatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/candidate_evaluator";
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    schema_ = Schema({{"m.lora_A.weight", DType::kF32, {2, 3}}});
    Adapter a;
    a.schema = schema_;
    a.values = {1, 2, 3, 4, 5, 6};
    position_ = dir_ + "/position.safetensors";
    ASSERT_TRUE(SaveSafetensors(a, position_).ok());
  }
  // A harness written as a shell script (the agent runs it without a shell of its own).
  absl::StatusOr<Scores> RunScript(const std::string& body, double timeout_s = 5) {
    const std::string script = dir_ + "/harness.sh";
    std::ofstream(script) << "#!/bin/sh\n" << body << "\n";
    fs::permissions(script, fs::perms::owner_all);
    ExternalCommandOptions o;
    o.argv = {"/bin/sh", script};
    o.timeout = absl::Seconds(timeout_s);
    o.kill_grace = absl::Milliseconds(200);
    o.scratch_dir = dir_ + "/scratch";
    o.env = {{"WXP_TEST_VALUE", "0.25"}};
    auto e = ExternalCommandEvaluator(o);
    if (!e.ok()) return e.status();
    return (*e)->Evaluate({3, 7, position_, &schema_});
  }
  std::string dir_, position_;
  Schema schema_;
};

TEST_F(CandidateEvaluatorTest, ExternalCommandGetsAPeftDirectoryAndItsScoresAreParsed) {
  // The harness checks the directory it was given is a loadable PEFT adapter and echoes an
  // environment variable the agent set.
  auto scores = RunScript(
      "test -f \"$1/adapter_model.safetensors\" || exit 9\n"
      "grep -q lora \"$1/adapter_config.json\" || exit 8\n"
      "echo 'loading model...'\n"
      "echo '{\"scores\": {\"acc\": '$WXP_TEST_VALUE', \"loss\": 1.5}}'");
  ASSERT_TRUE(scores.ok()) << scores.status();
  EXPECT_EQ(*scores, (Scores{{"acc", 0.25}, {"loss", 1.5}}));
}

TEST_F(CandidateEvaluatorTest, ExternalFailuresAreStatusesNamingTheCause) {
  auto crash = RunScript("echo 'CUDA out of memory' >&2; exit 3");
  EXPECT_EQ(crash.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(crash.status().message().find("exited with status 3"), std::string::npos);
  EXPECT_NE(crash.status().message().find("CUDA out of memory"), std::string::npos);

  auto garbage = RunScript("echo 'accuracy: 0.7'");
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);

  auto no_scores = RunScript("echo '{\"acc\": 0.7}'");
  EXPECT_NE(no_scores.status().message().find("no \"scores\""), std::string::npos);

  auto non_numeric = RunScript("echo '{\"scores\": {\"acc\": \"high\"}}'");
  EXPECT_NE(non_numeric.status().message().find("not a number"), std::string::npos);

  auto silent = RunScript("true");
  EXPECT_NE(silent.status().message().find("printed nothing"), std::string::npos);

  // A hang, with a child that ignores SIGTERM: the whole group is killed at the deadline.
  const absl::Time start = absl::Now();
  auto hang = RunScript("trap '' TERM; sleep 30 & sleep 30", 0.3);
  EXPECT_EQ(hang.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(CandidateEvaluatorTest, AMissingProgramIsNotFound) {
  ExternalCommandOptions o;
  o.argv = {"/nonexistent/harness"};
  o.scratch_dir = dir_ + "/scratch";
  auto e = ExternalCommandEvaluator(o);
  ASSERT_TRUE(e.ok());
  auto r = (*e)->Evaluate({0, 1, position_, &schema_});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
}

TEST_F(CandidateEvaluatorTest, FactoryRefusesAnEmptyCommandAndBadEnvironment) {
  ExternalCommandOptions o;
  o.scratch_dir = dir_ + "/scratch";
  EXPECT_EQ(ExternalCommandEvaluator(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.argv = {"true"};
  o.env = {{"A=B", "1"}};
  EXPECT_EQ(ExternalCommandEvaluator(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CandidateEvaluatorTest, InProcessEvaluatorSeesThePositionValues) {
  auto e = InProcessEvaluator(
      std::make_unique<SyntheticEvaluator>(std::vector<float>{1, 2, 3, 4, 5, 6}));
  auto scores = e->Evaluate({0, 0, position_, &schema_});
  ASSERT_TRUE(scores.ok()) << scores.status();
  EXPECT_EQ(scores->at(kSyntheticComponent), 0.0);
}

TEST(ParseScoresOutputTest, TakesTheWholeOutputOrItsLastLine) {
  EXPECT_TRUE(ParseScoresOutput("{\"scores\": {\"a\": 1}}").ok());
  EXPECT_TRUE(ParseScoresOutput("log line\n{\"scores\": {\"a\": 1}}\n").ok());
  EXPECT_FALSE(ParseScoresOutput("{\"scores\": {\"a\": 1}}\ntrailing log\n").ok());
  EXPECT_FALSE(ParseScoresOutput("{\"scores\": {}}").ok());
  EXPECT_FALSE(ParseScoresOutput("{\"scores\": {\"a\": 1e999}}").ok());
}

}  // namespace
}  // namespace wxp::agent
