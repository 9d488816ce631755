// The train_command seam (SPEC 4.4) with small fake commands: shell scripts written here that
// copy a prepared file to OUT, or exit 1, sleep past the time-out, write nothing, write
// another schema or NaN. Every failure is a status naming the cause, never a crash, and
// the scratch directories are gone afterwards.
#include "client/agent/train_command.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/adapter.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace wxp::agent {
namespace {
namespace fs = std::filesystem;

// Scores every candidate alike and cannot train by itself.
class FixedEvaluator : public CandidateEvaluator {
 public:
  absl::StatusOr<Scores> Evaluate(const Candidate&) override { return Scores{{"acc", 0.5}}; }
};

class TrainCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/train_command_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    schema_ = Schema(
        {{"m.lora_A.weight", DType::kF32, {2, 3}}, {"m.lora_B.weight", DType::kF32, {4, 2}}});
    x_ = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    position_ = Save("position.safetensors", schema_, x_);
  }

  std::string Save(const std::string& name, const Schema& schema, std::vector<float> values) {
    Adapter a;
    a.schema = schema;
    a.values = std::move(values);
    const std::string path = dir_ + "/" + name;
    EXPECT_TRUE(SaveSafetensors(a, path).ok());
    return path;
  }

  // Runs one training with `body` as the command (a /bin/sh script; "$1" is IN, "$2" OUT).
  absl::StatusOr<std::vector<float>> Train(const std::string& body, double timeout_s = 30) {
    const std::string script = dir_ + "/train.sh";
    std::ofstream(script) << "#!/bin/sh\nset -e\n" << body << "\n";
    TrainCommandOptions o;
    o.argv = {"/bin/sh", script};
    o.timeout = absl::Seconds(timeout_s);
    o.kill_grace = absl::Milliseconds(200);
    o.scratch_dir = dir_ + "/scratch";
    o.env = {{"WXP_TEST_EXTRA", "yes"}, {kTrainSeedEnv, "overridden by the agent"}};
    auto e = WithTrainCommand(std::make_unique<FixedEvaluator>(), o);
    if (!e.ok()) return e.status();
    evaluator_ = std::move(*e);
    TrainingRequest r;
    r.particle = 3;
    r.iteration = 7;
    r.seed = 18446744073709551557ull;  // beyond int64: passed as decimal uint64
    r.steps = 5;
    r.learning_rate = 0.1;  // not exact in binary: must round-trip
    r.batch = 16;
    r.params = x_;
    return evaluator_->Train(r, {3, 7, position_, &schema_});
  }

  // A script that puts `file` at OUT as a PEFT directory.
  static std::string WriteOut(const std::string& file) {
    return "mkdir -p \"$2\"\ncp '" + file + "' \"$2/adapter_model.safetensors\"";
  }

  void ExpectScratchClean() {
    for (const auto& e : fs::directory_iterator(dir_ + "/scratch")) {
      ADD_FAILURE() << "left behind: " << e.path();
    }
  }

  std::string dir_, position_;
  Schema schema_;
  std::vector<float> x_;
  std::unique_ptr<CandidateEvaluator> evaluator_;
};

TEST_F(TrainCommandTest, CommandGetsInAndOutAndTheSettingsAndItsOutputIsTheTrainedPosition) {
  std::vector<float> trained = x_;
  for (float& f : trained) f *= -0.5f;
  const std::string result = Save("trained.safetensors", schema_, trained);
  const std::string seen = dir_ + "/seen.txt";
  absl::StatusOr<std::vector<float>> r = Train(
      "test \"$1\" = \"$WXP_TRAIN_INPUT\"\n"
      "test \"$2\" = \"$WXP_TRAIN_OUTPUT\"\n"
      "test ! -e \"$2\"\n"
      "cmp \"$1/adapter_model.safetensors\" '" +
      position_ +
      "'\n"
      "grep -q lora \"$1/adapter_config.json\"\n"
      "echo \"$WXP_TRAIN_STEPS $WXP_TRAIN_LEARNING_RATE $WXP_TRAIN_BATCH $WXP_TRAIN_SEED "
      "$WXP_TRAIN_PARTICLE $WXP_TRAIN_ITERATION $WXP_TEST_EXTRA\" > '" +
      seen + "'\n" + WriteOut(result));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, trained);
  absl::StatusOr<std::string> settings = ReadFile(seen);
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(*settings, "5 0.10000000000000001 16 18446744073709551557 3 7 yes\n");
  EXPECT_TRUE(evaluator_->CanTrain());
  // Evaluation is the wrapped evaluator's.
  EXPECT_EQ(*evaluator_->Evaluate({3, 7, position_, &schema_}), (Scores{{"acc", 0.5}}));
  ExpectScratchClean();
}

TEST_F(TrainCommandTest, NonZeroExitIsAFailedStepWithItsStderr) {
  absl::StatusOr<std::vector<float>> r = Train("echo 'out of memory' >&2; exit 1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal) << r.status();
  EXPECT_NE(r.status().message().find("exited with status 1"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("out of memory"), std::string::npos) << r.status();
  ExpectScratchClean();
}

TEST_F(TrainCommandTest, TimeOutStopsTheCommandAndIsAFailedStep) {
  // The sleep would outlive the test by far: the time-out, not the script, ends it.
  absl::StatusOr<std::vector<float>> r = Train("sleep 600", /*timeout_s=*/0.5);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_NE(r.status().message().find("did not finish"), std::string::npos) << r.status();
  ExpectScratchClean();
}

TEST_F(TrainCommandTest, MissingOutputIsAFailedStep) {
  absl::StatusOr<std::vector<float>> r = Train("mkdir -p \"$2\"; echo done");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
  EXPECT_NE(r.status().message().find("adapter_model.safetensors"), std::string::npos);
  r = Train("true");  // no OUT at all
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
  r = Train("mkdir -p \"$2\"; echo garbage > \"$2/adapter_model.safetensors\"");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
}

TEST_F(TrainCommandTest, AnotherSchemaIsAFailedStepNamingTheDifference) {
  const std::vector<float> v(14, 0.25f);
  const std::vector<std::pair<Schema, std::string>> wrong = {
      {Schema({{"m.lora_A.weight", DType::kF32, {3, 2}}, {"m.lora_B.weight", DType::kF32, {4, 2}}}),
       "shape [3, 2]"},
      {Schema({{"m.lora_A.weight", DType::kF32, {2, 3}}, {"x.lora_B.weight", DType::kF32, {4, 2}}}),
       "'x.lora_B.weight'"},
      {Schema(
           {{"m.lora_A.weight", DType::kBF16, {2, 3}}, {"m.lora_B.weight", DType::kF32, {4, 2}}}),
       "BF16"},
      {Schema({{"m.lora_A.weight", DType::kF32, {2, 7}}}), "1 tensors"},
  };
  for (const auto& [schema, want] : wrong) {
    const std::string file = Save("wrong.safetensors", schema, v);
    absl::StatusOr<std::vector<float>> r = Train(WriteOut(file));
    ASSERT_FALSE(r.ok()) << want;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_NE(r.status().message().find("not the input's schema"), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find(want), std::string::npos) << r.status();
  }
  ExpectScratchClean();
}

TEST_F(TrainCommandTest, NonFiniteWeightsAreAFailedStep) {
  for (float bad : {std::nanf(""), INFINITY}) {
    std::vector<float> v = x_;
    v[9] = bad;
    const std::string file = Save("bad.safetensors", schema_, v);
    absl::StatusOr<std::vector<float>> r = Train(WriteOut(file));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_NE(r.status().message().find("non-finite"), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find("flat index 9"), std::string::npos) << r.status();
  }
}

TEST_F(TrainCommandTest, MissingProgramIsAFailedStepAndBadOptionsAreRefused) {
  TrainCommandOptions o;
  o.scratch_dir = dir_ + "/scratch";
  o.argv = {dir_ + "/no-such-trainer"};
  auto e = WithTrainCommand(std::make_unique<FixedEvaluator>(), o);
  ASSERT_TRUE(e.ok()) << e.status();
  TrainingRequest r;
  r.params = x_;
  EXPECT_EQ((*e)->Train(r, {0, 1, position_, &schema_}).status().code(),
            absl::StatusCode::kNotFound);

  o.argv = {};
  EXPECT_EQ(WithTrainCommand(std::make_unique<FixedEvaluator>(), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.argv = {"/bin/true"};
  o.env = {{"A=B", "1"}};
  EXPECT_EQ(WithTrainCommand(std::make_unique<FixedEvaluator>(), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.env = {};
  o.timeout = absl::ZeroDuration();
  EXPECT_EQ(WithTrainCommand(std::make_unique<FixedEvaluator>(), o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wxp::agent
