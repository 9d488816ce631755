// In-process tests of `wxpctl merge` and `wxpctl adapter inspect` on adapters written here.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "client/admin/run_for_test.h"
#include "common/adapter.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wxp::admin {
namespace {

namespace fs = std::filesystem;

std::string Dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "/wxpctl_" + name;
  fs::remove_all(d);
  return d;
}

// Two-tensor LoRA adapter with the given values (4 + 2 parameters).
std::string WriteAdapter(const std::string& name, std::vector<float> values,
                         DType dtype = DType::kF32) {
  Adapter a;
  a.schema = Schema({{"base_model.model.q_proj.lora_A.weight", dtype, {2, 2}},
                     {"base_model.model.q_proj.lora_B.weight", dtype, {2, 1}}});
  a.values = std::move(values);
  a.config_json = R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "custom": true})";
  const std::string dir = Dir(name);
  EXPECT_TRUE(SaveAdapterDir(a, dir).ok());
  return dir;
}

TEST(MergeCommandTest, WeightedLinearMergeWritesAPeftDirectory) {
  const std::string a = WriteAdapter("lin_a", {1, 2, 3, 4, 5, 6});
  const std::string b = WriteAdapter("lin_b", {3, 2, 1, 0, -1, 2});
  const std::string out = Dir("lin_out");
  CliOutput o = RunCli({"merge", "--method=linear", "--weights=1,3", "--out", out, a, b});
  ASSERT_EQ(o.code, 0) << o.err;
  absl::StatusOr<Adapter> merged = LoadAdapter(out);
  ASSERT_TRUE(merged.ok()) << merged.status();
  // (1*a + 3*b) / 4: (1+9)/4=2.5, (2+6)/4=2, (3+3)/4=1.5, (4+0)/4=1, (5-3)/4=.5, (6+6)/4=3
  EXPECT_EQ(merged->values, (std::vector<float>{2.5, 2, 1.5, 1, 0.5, 3}));
  // The first adapter's config is kept verbatim, unknown keys included.
  EXPECT_NE(merged->config_json->find("\"custom\": true"), std::string::npos);
}

TEST(MergeCommandTest, SlerpAndTiesRun) {
  const std::string a = WriteAdapter("s_a", {1, 0, 0, 0, 1, 0});
  const std::string b = WriteAdapter("s_b", {0, 1, 0, 0, 0, 1});
  // t=0 gives the first adapter exactly.
  const std::string s0 = Dir("s0");
  ASSERT_EQ(RunCli({"merge", "--method=slerp", "--t=0", "--out", s0, a, b}).code, 0);
  EXPECT_EQ(LoadAdapter(s0)->values, (std::vector<float>{1, 0, 0, 0, 1, 0}));
  EXPECT_EQ(RunCli({"merge", "--method=ties", "--density=0.5", "--out", Dir("t"), a, b}).code,
            0);
  EXPECT_EQ(RunCli({"merge", "--method=dare_ties", "--seed=3", "--out", Dir("dt"), a, b}).code,
            0);
}

TEST(MergeCommandTest, RefusesBadRequestsWithoutWriting) {
  const std::string a = WriteAdapter("bad_a", {1, 2, 3, 4, 5, 6});
  const std::string b16 = WriteAdapter("bad_b16", {1, 2, 3, 4, 5, 6}, DType::kBF16);
  const std::string out = Dir("bad_out");
  CliOutput mismatch = RunCli({"merge", "--method=linear", "--out", out, a, b16});
  EXPECT_EQ(mismatch.code, 1);
  EXPECT_NE(mismatch.err.find("schema mismatch"), std::string::npos) << mismatch.err;
  EXPECT_EQ(RunCli({"merge", "--method=median", "--out", out, a, a}).code, 2);
  EXPECT_EQ(RunCli({"merge", "--method=linear", a, a}).code, 2);  // no --out
  EXPECT_EQ(RunCli({"merge", "--out", out, a, a}).code, 2);       // no --method
  EXPECT_EQ(RunCli({"merge", "--method=linear", "--weights=1", "--out", out, a, a}).code, 1);
  EXPECT_EQ(RunCli({"merge", "--method=slerp", "--out", out, a, a, a}).code, 1);
  EXPECT_EQ(RunCli({"merge", "--method=ties", "--density=2", "--out", out, a, a}).code, 1);
  EXPECT_FALSE(fs::exists(out));
}

TEST(InspectCommandTest, JsonDescribesTheAdapter) {
  const std::string a = WriteAdapter("insp", {1, 2, 3, 4, 5, 6}, DType::kBF16);
  CliOutput o = RunCli({"adapter", "inspect", "--json", a});
  ASSERT_EQ(o.code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["format"], "peft");
  EXPECT_EQ(j["tensor_count"], 2);
  EXPECT_EQ(j["parameter_count"], 6);
  EXPECT_EQ(j["dtypes"]["BF16"], 6);
  EXPECT_EQ(j["blob_id"], *Sha256File(a + "/adapter_model.safetensors"));
  EXPECT_EQ(j["canonical"], true);
  EXPECT_EQ(j["peft"]["r"], 2);
  EXPECT_EQ(j["tensors"][1]["shape"], nlohmann::json::array({2, 1}));
  EXPECT_EQ(j["schema_fingerprint"].get<std::string>().size(), 64u);
}

TEST(InspectCommandTest, InvalidInputGivesOneLineAndExitOne) {
  const std::string dir = Dir("garbage");
  fs::create_directories(dir);
  const std::string file = dir + "/x.safetensors";
  { std::ofstream(file) << "not a safetensors file at all"; }
  CliOutput o = RunCli({"adapter", "inspect", file});
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  EXPECT_EQ(o.err.rfind("wxpctl: ", 0), 0u);
  EXPECT_EQ(RunCli({"adapter", "inspect", dir + "/missing"}).code, 1);
  EXPECT_EQ(RunCli({"adapter", "inspect"}).code, 2);
}

}  // namespace
}  // namespace wxp::admin
