// The decoders against dense arithmetic in double precision: ΔW per module is formed here
// (small shapes) and compared with the decoded factors' product.
#include "common/lora_decode.h"

#include <ATen/ATen.h>

#include <cmath>

#include "common/testing/testdata.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace wxp {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::ordered_json;

constexpr char kQ[] = "base_model.model.layers.0.self_attn.q_proj";
constexpr char kV[] = "base_model.model.layers.0.self_attn.v_proj";
constexpr char kK[] = "base_model.model.layers.0.self_attn.k_proj";

struct ModuleSpec {
  std::string name;
  int64_t rank, in, out;
};

// An F32 expert with deterministic pseudo-random factors and the given config.
Adapter MakeExpert(const std::vector<ModuleSpec>& modules, const std::string& config,
                   uint64_t seed) {
  std::vector<TensorSpec> specs;
  for (const ModuleSpec& m : modules) {
    specs.push_back({m.name + ".lora_A.weight", DType::kF32, {m.rank, m.in}});
    specs.push_back({m.name + ".lora_B.weight", DType::kF32, {m.out, m.rank}});
  }
  Adapter a;
  a.schema = Schema(std::move(specs));
  a.values.resize(a.schema.total_params());
  uint64_t state = seed * 0x9e3779b97f4a7c15ULL + 1;
  for (float& x : a.values) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    x = static_cast<float>(static_cast<int64_t>(state >> 40) % 2001 - 1000) / 1000.f;
  }
  a.config_json = config;
  a.metadata = {{"format", "pt"}};
  return a;
}

at::Tensor Tensor(const Adapter& a, const std::string& name) {
  for (size_t i = 0; i < a.schema.size(); ++i) {
    if (a.schema.tensor(i).name != name) continue;
    return at::from_blob(const_cast<float*>(a.values.data()) + a.schema.offset(i),
                         a.schema.tensor(i).shape, at::TensorOptions().dtype(at::kFloat))
        .to(at::kDouble);
  }
  ADD_FAILURE() << "no tensor " << name;
  return at::Tensor();
}

bool Has(const Adapter& a, const std::string& module) {
  for (const TensorSpec& t : a.schema.tensors()) {
    if (t.name == module + ".lora_A.weight") return true;
  }
  return false;
}

// s·B·A of `module` in `a` (scaling from its config), in double.
at::Tensor DeltaW(const Adapter& a, const std::string& module) {
  absl::StatusOr<LoraLayout> l = ParseLoraLayout(a);
  EXPECT_TRUE(l.ok()) << l.status();
  const double s = l->modules[l->Find(module)].scaling;
  return s * Tensor(a, module + ".lora_B.weight").mm(Tensor(a, module + ".lora_A.weight"));
}

double RelError(const at::Tensor& got, const at::Tensor& want) {
  return (got - want).norm().item<double>() / std::max(want.norm().item<double>(), 1e-300);
}

// Expert 0: rank 4, alpha 8 (s = 2) on q and v. Expert 1: rank 8, alpha 32 (s = 4) on q and
// k, with k at rank 6 / alpha 3 (s = 0.5) through the patterns.
std::vector<Adapter> TwoExperts() {
  std::vector<Adapter> e;
  e.push_back(MakeExpert({{kQ, 4, 12, 16}, {kV, 4, 12, 10}},
                         R"({"base_model_name_or_path": "tiny", "custom_key": [1, 2],
                             "lora_alpha": 8, "peft_type": "LORA", "r": 4,
                             "target_modules": ["q_proj", "v_proj"]})",
                         1));
  e.push_back(MakeExpert({{kQ, 8, 12, 16}, {kK, 6, 12, 14}},
                         R"({"base_model_name_or_path": "tiny", "lora_alpha": 32,
                             "peft_type": "LORA", "r": 8, "target_modules": ["q_proj", "k_proj"],
                             "rank_pattern": {"k_proj": 6}, "alpha_pattern": {"k_proj": 3}})",
                         2));
  return e;
}

std::vector<const Adapter*> Ptrs(const std::vector<Adapter>& e) {
  std::vector<const Adapter*> p;
  for (const Adapter& a : e) p.push_back(&a);
  return p;
}

// Σ_j α_j(m) s_j B_j A_j for module m of the set, over the experts holding it.
at::Tensor ExpectedDelta(const std::vector<Adapter>& e, const std::string& module,
                         const std::vector<double>& alpha) {
  at::Tensor sum;
  for (size_t j = 0; j < e.size(); ++j) {
    if (!Has(e[j], module)) continue;
    at::Tensor d = alpha[j] * DeltaW(e[j], module);
    sum = sum.defined() ? sum + d : d;
  }
  return sum;
}

TEST(LoraDecodeTest, UnitCoefficientReproducesTheRealPeftAdapter) {
  std::optional<std::string> testdata = testing::SharedTestdataDir();
  if (!testdata) GTEST_SKIP() << "shared/testdata not found beside the workspace";
  absl::StatusOr<Adapter> gpt2 = LoadAdapter(*testdata + "/peft/gpt2_tigrinya_lora_f32");
  ASSERT_TRUE(gpt2.ok()) << gpt2.status();
  // α = e_1 over two experts (the adapter and a copy): the second contributes zero columns.
  absl::StatusOr<Adapter> d = DecodeLora({&*gpt2, &*gpt2}, LoraCoefficients::PerExpert({1, 0}), {});
  ASSERT_TRUE(d.ok()) << d.status();
  absl::StatusOr<LoraLayout> in = ParseLoraLayout(*gpt2);
  absl::StatusOr<LoraLayout> out = ParseLoraLayout(*d);
  ASSERT_TRUE(in.ok() && out.ok()) << out.status();
  ASSERT_EQ(out->modules.size(), 36u);
  for (size_t m = 0; m < in->modules.size(); ++m) {
    const LoraModule& mod = in->modules[m];
    ASSERT_EQ(out->modules[m].name, mod.name);  // PEFT's key names, in the same order
    EXPECT_EQ(out->modules[m].rank, 16);
    EXPECT_EQ(out->modules[m].scaling, 1.0);
    // A' = [A; A] and B' = [4·B, 0]: exact, since the scaling 32/8 is a power of two.
    at::Tensor a = Tensor(*gpt2, mod.name + ".lora_A.weight");
    at::Tensor b = Tensor(*gpt2, mod.name + ".lora_B.weight");
    at::Tensor a2 = Tensor(*d, mod.name + ".lora_A.weight");
    at::Tensor b2 = Tensor(*d, mod.name + ".lora_B.weight");
    EXPECT_TRUE(a2.narrow(0, 0, 8).equal(a)) << mod.name;
    EXPECT_TRUE(b2.narrow(1, 0, 8).equal(4 * b)) << mod.name;
    EXPECT_EQ(b2.narrow(1, 8, 8).abs().max().item<double>(), 0.0);
    EXPECT_LT(RelError(b2.mm(a2), DeltaW(*gpt2, mod.name)), 1e-12) << mod.name;
  }
  // The written config: the expert's with r = lora_alpha = 16, every other key kept.
  Json before = Json::parse(*gpt2->config_json);
  Json after = Json::parse(*d->config_json);
  EXPECT_EQ(after["r"], 16);
  EXPECT_EQ(after["lora_alpha"], 16);
  EXPECT_EQ(after["rank_pattern"], Json::object());
  EXPECT_EQ(after["fan_in_fan_out"], true);
  before.erase("r");
  before.erase("lora_alpha");
  after.erase("r");
  after.erase("lora_alpha");
  EXPECT_EQ(after, before);
  EXPECT_EQ(d->metadata, gpt2->metadata);
}

TEST(LoraDecodeTest, ProductOfExpertsWithDifferentRanksScalingsAndModules) {
  const std::vector<Adapter> e = TwoExperts();
  const std::vector<double> alpha = {0.7, -1.3};
  absl::StatusOr<Adapter> d = DecodeLora(Ptrs(e), LoraCoefficients::PerExpert(alpha), {});
  ASSERT_TRUE(d.ok()) << d.status();
  absl::StatusOr<LoraLayout> l = ParseLoraLayout(*d);
  ASSERT_TRUE(l.ok()) << l.status();  // the written config is consistent with the tensors
  ASSERT_EQ(l->modules.size(), 3u);
  const std::vector<std::string> order = {kQ, kV, kK};  // the swarm's module order
  const std::vector<int64_t> ranks = {12, 4, 6};
  for (size_t m = 0; m < 3; ++m) {
    EXPECT_EQ(l->modules[m].name, order[m]);
    EXPECT_EQ(l->modules[m].rank, ranks[m]);
    EXPECT_EQ(l->modules[m].scaling, 1.0);
    EXPECT_LT(RelError(DeltaW(*d, order[m]), ExpectedDelta(e, order[m], alpha)), 1e-5) << order[m];
  }
  Json cfg = Json::parse(*d->config_json);
  EXPECT_EQ(cfg["r"], 12);
  EXPECT_EQ(cfg["lora_alpha"], 12);
  EXPECT_EQ(cfg["rank_pattern"], Json::parse(R"({"layers.0.self_attn.v_proj": 4,
                                                 "layers.0.self_attn.k_proj": 6})"));
  EXPECT_EQ(cfg["alpha_pattern"], cfg["rank_pattern"]);
  EXPECT_EQ(cfg["target_modules"], Json::parse(R"(["q_proj", "v_proj", "k_proj"])"));
  EXPECT_EQ(cfg["custom_key"], Json::parse("[1, 2]"));
}

TEST(LoraDecodeTest, PerModuleCoefficients) {
  const std::vector<Adapter> e = TwoExperts();
  // Rows are experts, columns the modules q, v, k.
  const std::vector<double> matrix = {0.5,  2.0, 9.0,  //
                                      -1.0, 7.0, 0.25};
  absl::StatusOr<Adapter> d = DecodeLora(Ptrs(e), LoraCoefficients::PerModule(2, 3, matrix), {});
  ASSERT_TRUE(d.ok()) << d.status();
  const std::vector<std::string> order = {kQ, kV, kK};
  for (size_t m = 0; m < 3; ++m) {
    EXPECT_LT(
        RelError(DeltaW(*d, order[m]), ExpectedDelta(e, order[m], {matrix[m], matrix[3 + m]})),
        1e-5)
        << order[m];
  }
}

TEST(LoraDecodeTest, SvdAtFullRankIsExactAndBelowItMeetsEckartYoung) {
  const std::vector<Adapter> e = TwoExperts();
  const std::vector<double> alpha = {0.7, -1.3};
  const std::vector<std::string> order = {kQ, kV, kK};
  absl::StatusOr<Adapter> full =
      DecodeLora(Ptrs(e), LoraCoefficients::PerExpert(alpha), {LoraDecoder::kLoraProductSvd, 12});
  ASSERT_TRUE(full.ok()) << full.status();
  for (const std::string& m : order) {
    EXPECT_EQ(Tensor(*full, m + ".lora_A.weight").size(0), 12);  // padded to k everywhere
    EXPECT_LT(RelError(DeltaW(*full, m), ExpectedDelta(e, m, alpha)), 1e-5) << m;
  }
  EXPECT_EQ(Json::parse(*full->config_json)["rank_pattern"], Json::object());

  const int64_t k = 3;
  absl::StatusOr<Adapter> cut =
      DecodeLora(Ptrs(e), LoraCoefficients::PerExpert(alpha), {LoraDecoder::kLoraProductSvd, k});
  ASSERT_TRUE(cut.ok()) << cut.status();
  for (const std::string& m : order) {
    const at::Tensor dense = ExpectedDelta(e, m, alpha);
    auto [u, s, vh] = at::linalg_svd(dense, /*full_matrices=*/false);
    const at::Tensor best =
        u.narrow(1, 0, k).mm(at::diag(s.narrow(0, 0, k))).mm(vh.narrow(0, 0, k));
    const double tail = s.narrow(0, k, s.size(0) - k).pow(2).sum().sqrt().item<double>();
    const at::Tensor got = DeltaW(*cut, m);
    EXPECT_NEAR((dense - got).norm().item<double>(), tail, 1e-5 * dense.norm().item<double>()) << m;
    EXPECT_LT(RelError(got, best), 1e-5) << m;
  }
}

TEST(LoraDecodeTest, LinearABIsTheElementwiseCombination) {
  const Adapter a = MakeExpert({{kQ, 4, 6, 5}}, R"({"r": 4, "lora_alpha": 8, "x": 1})", 3);
  const Adapter b = MakeExpert({{kQ, 4, 6, 5}}, R"({"r": 4, "lora_alpha": 16})", 4);
  absl::StatusOr<Adapter> d =
      DecodeLora({&a, &b}, LoraCoefficients::PerExpert({0.25, -2}), {LoraDecoder::kLinearAB});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->schema, a.schema);
  EXPECT_EQ(d->config_json, a.config_json);  // the first expert's config, verbatim
  for (size_t i = 0; i < a.values.size(); ++i) {
    ASSERT_EQ(d->values[i], static_cast<float>(0.25 * a.values[i] - 2.0 * b.values[i])) << i;
  }
}

TEST(LoraDecodeTest, Refusals) {
  const std::vector<Adapter> e = TwoExperts();
  auto message = [](const absl::StatusOr<Adapter>& r) {
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    return std::string(r.status().message());
  };
  EXPECT_THAT(
      message(DecodeLora(Ptrs(e), LoraCoefficients::PerExpert({1, 2}), {LoraDecoder::kLinearAB})),
      HasSubstr("LINEAR_AB needs identical schemas; expert 1 differs"));
  EXPECT_THAT(message(DecodeLora(Ptrs(e), LoraCoefficients::PerExpert({1}), {})),
              HasSubstr("coefficients are for 1 experts, not 2"));
  EXPECT_THAT(message(DecodeLora(Ptrs(e), LoraCoefficients::PerModule(2, 2, {1, 2, 3, 4}), {})),
              HasSubstr("per-module coefficients cover 2 modules; the experts have 3"));
  EXPECT_THAT(message(DecodeLora(Ptrs(e), LoraCoefficients::PerModule(2, 3, {1, 2, 3}), {})),
              HasSubstr("coefficients hold 3 values, not 6"));
  EXPECT_THAT(message(DecodeLora(Ptrs(e), LoraCoefficients::PerExpert({1, std::nan("")}), {})),
              HasSubstr("coefficient 1 is not finite"));
  EXPECT_THAT(message(DecodeLora(Ptrs(e), LoraCoefficients::PerExpert({1, 2}),
                                 {LoraDecoder::kLoraProductSvd, 0})),
              HasSubstr("svd_rank >= 1"));
  const Adapter regex = MakeExpert({{kQ, 4, 12, 16}},
                                   R"({"r": 4, "lora_alpha": 4, "target_modules": ".*q_proj"})", 5);
  EXPECT_THAT(message(DecodeLora({&e[0], &regex}, LoraCoefficients::PerExpert({1, 1}), {})),
              HasSubstr("cannot be merged"));
  const Adapter other = MakeExpert(
      {{kQ, 4, 12, 16}}, R"({"r": 4, "lora_alpha": 4, "base_model_name_or_path": "big"})", 6);
  EXPECT_THAT(message(DecodeLora({&e[0], &other}, LoraCoefficients::PerExpert({1, 1}), {})),
              HasSubstr("different base models"));
  EXPECT_THAT(message(DecodeLora({}, LoraCoefficients::PerExpert({}), {})),
              HasSubstr("no experts"));
}

}  // namespace
}  // namespace wxp
