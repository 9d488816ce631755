// In-process tests of `wxpctl merge` and `wxpctl adapter inspect` on adapters written here.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
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
  EXPECT_EQ(RunCli({"merge", "--method=ties", "--density=0.5", "--out", Dir("t"), a, b}).code, 0);
  EXPECT_EQ(RunCli({"merge", "--method=dare_ties", "--seed=3", "--out", Dir("dt"), a, b}).code, 0);
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

// A one-module LoRA of rank r on q_proj ([2, 3] weight), with lora_alpha `alpha`.
std::string WriteRankAdapter(const std::string& name, int64_t r, double alpha,
                             std::vector<float> values) {
  Adapter a;
  a.schema = Schema({{"base_model.model.q_proj.lora_A.weight", DType::kF32, {r, 3}},
                     {"base_model.model.q_proj.lora_B.weight", DType::kF32, {2, r}}});
  a.values = std::move(values);
  a.config_json = absl::StrCat(R"({"peft_type": "LORA", "r": )", r, R"(, "lora_alpha": )", alpha,
                               R"(, "custom": true, "target_modules": ["q_proj"]})");
  const std::string dir = Dir(name);
  EXPECT_TRUE(SaveAdapterDir(a, dir).ok());
  return dir;
}

// scaling·B·A of a loaded one-module adapter ([2, 3], row-major), scaling from its r/alpha.
std::vector<double> Delta(const Adapter& a, double scaling) {
  const int64_t r = a.schema.tensor(0).shape[0];
  const float* A = a.values.data();
  const float* B = a.values.data() + a.schema.offset(1);
  std::vector<double> d(6, 0.0);
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 3; ++j) {
      for (int k = 0; k < r; ++k) d[i * 3 + j] += scaling * B[i * r + k] * A[k * 3 + j];
    }
  }
  return d;
}

TEST(MergeCommandTest, CatIsTheExactProductMergeOfExpertsOfDifferentRanks) {
  // Rank 2 with scaling 4/2 = 2, rank 1 with scaling 3/1 = 3.
  const std::string a = WriteRankAdapter("cat_a", 2, 4, {1, 0, 2, 0, 1, -1, 1, 2, 0.5, -1});
  const std::string b = WriteRankAdapter("cat_b", 1, 3, {2, -1, 1, 0.5, 4});
  absl::StatusOr<Adapter> ea = LoadAdapter(a), eb = LoadAdapter(b);
  ASSERT_TRUE(ea.ok() && eb.ok());
  const std::vector<double> da = Delta(*ea, 2), db = Delta(*eb, 3);

  const std::string out = Dir("cat_out");
  CliOutput o = RunCli({"merge", "--method=cat", "--weights=0.5,-2", "--out", out, a, b});
  ASSERT_EQ(o.code, 0) << o.err;
  absl::StatusOr<Adapter> merged = LoadAdapter(out);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->schema.tensor(0).shape, (std::vector<int64_t>{3, 3}));  // rank 2 + 1
  const std::vector<double> d = Delta(*merged, 1);  // r = lora_alpha: scaling 1
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(d[i], 0.5 * da[i] - 2 * db[i], 1e-5) << i;
  nlohmann::json cfg = nlohmann::json::parse(*merged->config_json);
  EXPECT_EQ(cfg["r"], 3);
  EXPECT_EQ(cfg["lora_alpha"], 3);
  EXPECT_EQ(cfg["custom"], true);

  // Default weights: 1/n each.
  const std::string avg = Dir("cat_avg");
  ASSERT_EQ(RunCli({"merge", "--method=cat", "--out", avg, a, b}).code, 0);
  const std::vector<double> d_avg = Delta(*LoadAdapter(avg), 1);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(d_avg[i], 0.5 * da[i] + 0.5 * db[i], 1e-5) << i;

  // svd at full rank is the same ΔW; below it, a rank-K adapter.
  const std::string full = Dir("svd_full");
  o = RunCli({"merge", "--method=svd", "--svd-rank=2", "--weights=0.5,-2", "--out", full, a, b});
  ASSERT_EQ(o.code, 0) << o.err;
  absl::StatusOr<Adapter> svd = LoadAdapter(full);
  ASSERT_TRUE(svd.ok()) << svd.status();
  EXPECT_EQ(svd->schema.tensor(0).shape, (std::vector<int64_t>{2, 3}));
  const std::vector<double> d_svd = Delta(*svd, 1);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(d_svd[i], d[i], 1e-4) << i;
  const std::string one = Dir("svd_one");
  ASSERT_EQ(RunCli({"merge", "--method=svd", "--svd-rank=1", "--out", one, a, b}).code, 0);
  EXPECT_EQ(LoadAdapter(one)->schema.tensor(1).shape, (std::vector<int64_t>{2, 1}));
}

TEST(MergeCommandTest, ProductMergesRefuseBadRequestsWithoutWriting) {
  const std::string a = WriteRankAdapter("pbad_a", 2, 4, {1, 0, 2, 0, 1, -1, 1, 2, 0.5, -1});
  const std::string wide = Dir("pbad_wide");
  {
    Adapter w;
    w.schema = Schema({{"base_model.model.q_proj.lora_A.weight", DType::kF32, {1, 4}},
                       {"base_model.model.q_proj.lora_B.weight", DType::kF32, {2, 1}}});
    w.values = {1, 2, 3, 4, 5, 6};
    ASSERT_TRUE(SaveAdapterDir(w, wide).ok());
  }
  const std::string out = Dir("pbad_out");
  CliOutput shapes = RunCli({"merge", "--method=cat", "--out", out, a, wide});
  EXPECT_EQ(shapes.code, 1);
  EXPECT_NE(shapes.err.find("disagree on module 'base_model.model.q_proj'"), std::string::npos)
      << shapes.err;
  EXPECT_EQ(RunCli({"merge", "--method=svd", "--out", out, a, a}).code, 2);  // no --svd-rank
  EXPECT_EQ(RunCli({"merge", "--method=svd", "--svd-rank=0", "--out", out, a, a}).code, 1);
  EXPECT_EQ(RunCli({"merge", "--method=cat", "--base", a, "--out", out, a, a}).code, 2);
  EXPECT_EQ(RunCli({"merge", "--method=cat", "--weights=1", "--out", out, a, a}).code, 1);
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
