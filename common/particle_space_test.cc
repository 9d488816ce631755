// The particle spaces against the runner: the coefficient engine is the WEIGHTS algorithm
// (LINEAR_AB reproduces the WEIGHTS trajectory), the product decoders run, and the spaces
// refuse what they cannot search.
#include "common/particle_space.h"

#include <algorithm>
#include <cmath>

#include "common/lora_synthetic.h"
#include "common/runner.h"
#include "common/synthetic.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

RunnerOptions Options(uint64_t seed) {
  RunnerOptions o;
  o.params.seed = seed;
  o.params.max_iterations = 30;
  o.params.patience = 8;
  return o;
}

std::unique_ptr<ParticleSpace> MakeSpace(std::vector<Adapter> experts,
                                         ParticleSpaceOptions options) {
  absl::StatusOr<std::unique_ptr<ParticleSpace>> space =
      ParticleSpace::Create(std::move(experts), options);
  EXPECT_TRUE(space.ok()) << space.status();
  return space.ok() ? std::move(*space) : nullptr;
}

ParticleSpaceOptions Coefficients(LoraDecoder decoder, int64_t svd_rank = 0,
                                  bool per_module = false) {
  return {SpaceKind::kExpertCoefficients, decoder, svd_rank, per_module};
}

bool Near(double a, double b, double rel) {
  return std::fabs(a - b) <= rel * std::max({std::fabs(a), std::fabs(b), 1e-12});
}

absl::StatusOr<RunResult> RunInSpace(const ParticleSpace& space, AdapterEvaluator& evaluator,
                                     const UtilityFunction& utility, uint64_t seed) {
  DecodingEvaluator decoding(space, evaluator);
  RunnerOptions o = Options(seed);
  o.crossover_groups = space.CrossoverGroups();
  return RunSwarm(space.InitialPositions(), utility, decoding, o);
}

TEST(ParticleSpaceTest, LinearAbCoefficientsFollowTheWeightsTrajectory) {
  const std::vector<Adapter> experts = MakeRandomLoraExperts(4, 2, 24, 4, /*seed=*/3);
  std::vector<std::vector<float>> flat;
  for (const Adapter& a : experts) flat.push_back(a.values);
  const std::vector<float> optimum = *MakeHiddenOptimum(flat, 3, 0.001);
  const UtilityFunction utility = *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}});

  auto weights = MakeSpace(experts, {});
  auto coefficients = MakeSpace(experts, Coefficients(LoraDecoder::kLinearAB));
  ASSERT_TRUE(weights && coefficients);
  EXPECT_EQ(weights->Dimension(), experts[0].schema.total_params());
  EXPECT_EQ(coefficients->Dimension(), 4);

  SyntheticEvaluator synthetic(optimum);
  FlatAdapterEvaluator flat_evaluator(experts[0].schema, synthetic);
  absl::StatusOr<RunResult> w = RunInSpace(*weights, flat_evaluator, utility, 11);
  absl::StatusOr<RunResult> c = RunInSpace(*coefficients, flat_evaluator, utility, 11);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE(c.ok()) << c.status();

  // The weights space is the plain runner over the experts' vectors, bit for bit.
  SyntheticEvaluator direct_evaluator(optimum);
  absl::StatusOr<RunResult> direct = RunSwarm(flat, utility, direct_evaluator, Options(11));
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(direct->best, w->best);
  EXPECT_EQ(direct->best_utility, w->best_utility);

  ASSERT_GT(w->history.size(), 3u);
  ASSERT_EQ(w->history.size(), c->history.size());
  EXPECT_EQ(w->best_ref, c->best_ref);
  EXPECT_EQ(w->termination, c->termination);
  EXPECT_TRUE(Near(w->best_utility, c->best_utility, 1e-4));
  for (size_t i = 0; i < w->initial_utilities.size(); ++i) {
    EXPECT_TRUE(Near(w->initial_utilities[i], c->initial_utilities[i], 1e-4)) << i;
  }
  for (size_t k = 0; k < w->history.size(); ++k) {
    const IterationSummary &a = w->history[k], &b = c->history[k];
    EXPECT_EQ(a.new_global_best, b.new_global_best) << k;
    EXPECT_EQ(a.restarts, b.restarts) << k;
    EXPECT_TRUE(Near(a.global_best_utility, b.global_best_utility, 1e-4)) << k;
    EXPECT_TRUE(Near(a.global_worst_utility, b.global_worst_utility, 1e-4)) << k;
    EXPECT_TRUE(Near(a.mean_utility, b.mean_utility, 1e-4)) << k;
  }
  // g decoded from α is g of the weights run.
  absl::StatusOr<Adapter> g = coefficients->Decode(c->best);
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->values.size(), w->best.size());
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < w->best.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(double{g->values[i]} - w->best[i]));
    max_abs = std::max(max_abs, std::fabs(double{w->best[i]}));
  }
  EXPECT_LE(max_diff, 1e-4 * max_abs);
}

TEST(ParticleSpaceTest, ProductDecodersNeverReturnWorseThanTheBestExpert) {
  const std::vector<Adapter> experts = MakeRandomLoraExperts(4, 3, 32, 4, /*seed=*/5);
  absl::StatusOr<DeltaTarget> target = MakeDeltaTarget(experts, 5, 0.0005);
  ASSERT_TRUE(target.ok()) << target.status();
  double best_expert = -1e300;
  for (const Adapter& a : experts) best_expert = std::max(best_expert, *DeltaWUtility(*target, a));
  const UtilityFunction utility = *UtilityFunction::Create({{kDeltaWComponent, true, 1.0}});

  for (const ParticleSpaceOptions& o :
       {Coefficients(LoraDecoder::kLoraProduct), Coefficients(LoraDecoder::kLoraProductSvd, 4),
        Coefficients(LoraDecoder::kLoraProduct, 0, /*per_module=*/true),
        Coefficients(LoraDecoder::kLoraProductSvd, 6, /*per_module=*/true)}) {
    auto space = MakeSpace(experts, o);
    ASSERT_TRUE(space);
    SCOPED_TRACE(space->Describe());
    DeltaWEvaluator evaluator(*target);
    absl::StatusOr<RunResult> r = RunInSpace(*space, evaluator, utility, 7);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_NE(r->termination, Termination::kRunning);
    EXPECT_GE(r->best_utility, best_expert - 1e-12);
    for (const IterationSummary& s : r->history) EXPECT_EQ(s.failed, 0);
    if (o.decoder == LoraDecoder::kLoraProduct) {  // exact ΔW: the span optimum bounds it
      EXPECT_LE(r->best_utility, *ProductSpanUtility(*target, experts, o.per_module) + 1e-9);
    }
    // g decodes to a LoRA that scores what the run recorded.
    absl::StatusOr<Adapter> g = space->Decode(r->best);
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_TRUE(ParseLoraLayout(*g).ok());
    EXPECT_TRUE(Near(*DeltaWUtility(*target, *g), r->best_utility, 1e-9));
  }
}

TEST(ParticleSpaceTest, PerModuleWithEqualModuleCoefficientsEqualsPerExpert) {
  const std::vector<Adapter> experts = MakeRandomLoraExperts(3, 2, 8, 2, /*seed=*/9);
  const std::vector<float> alpha = {0.6f, -0.3f, 0.7f};
  for (LoraDecoder d :
       {LoraDecoder::kLinearAB, LoraDecoder::kLoraProduct, LoraDecoder::kLoraProductSvd}) {
    const int64_t k = d == LoraDecoder::kLoraProductSvd ? 3 : 0;
    auto per_expert = MakeSpace(experts, Coefficients(d, k));
    auto per_module = MakeSpace(experts, Coefficients(d, k, /*per_module=*/true));
    ASSERT_TRUE(per_expert && per_module);
    SCOPED_TRACE(per_module->Describe());
    ASSERT_EQ(per_module->modules().size(), 2u);
    EXPECT_EQ(per_module->Dimension(), 6);
    // Initial positions: row j of the n × M matrix is all ones.
    const std::vector<std::vector<float>> init = per_module->InitialPositions();
    ASSERT_EQ(init.size(), 3u);
    EXPECT_EQ(init[1], (std::vector<float>{0, 0, 1, 1, 0, 0}));
    EXPECT_EQ(per_expert->InitialPositions()[1], (std::vector<float>{0, 1, 0}));

    std::vector<float> matrix;
    for (float a : alpha) matrix.insert(matrix.end(), {a, a});
    absl::StatusOr<Adapter> x = per_expert->Decode(alpha);
    absl::StatusOr<Adapter> y = per_module->Decode(matrix);
    ASSERT_TRUE(x.ok() && y.ok()) << x.status() << y.status();
    EXPECT_EQ(x->schema, y->schema);
    EXPECT_EQ(x->config_json, y->config_json);
    EXPECT_EQ(x->values, y->values);
  }
}

TEST(ParticleSpaceTest, PerModuleSearchLeavesTheModuleUniformPositions) {
  const std::vector<Adapter> experts = MakeRandomLoraExperts(3, 2, 8, 2, /*seed=*/9);
  auto per_expert = MakeSpace(experts, Coefficients(LoraDecoder::kLoraProduct));
  auto per_module = MakeSpace(experts, Coefficients(LoraDecoder::kLoraProduct, 0, true));
  ASSERT_TRUE(per_expert && per_module);
  EXPECT_EQ(per_expert->CrossoverGroups(), 1);
  ASSERT_EQ(per_module->CrossoverGroups(), 2);
  // A target only per-module coefficients express: module 0 wants expert 0, module 1
  // expert 2.
  const Adapter target = *per_module->Decode(std::vector<float>{0.9f, 0.1f, 0, 0, 0.1f, 0.8f});
  SyntheticEvaluator flat(target.values);
  FlatAdapterEvaluator adapters(target.schema, flat);
  const UtilityFunction utility = *UtilityFunction::Create({{kSyntheticComponent, true, 1.0}});
  absl::StatusOr<RunResult> run = RunInSpace(*per_module, adapters, utility, 5);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->best.size(), 6u);
  float spread = 0;
  for (int j = 0; j < 3; ++j) {
    spread = std::max(spread, std::fabs(run->best[2 * j] - run->best[2 * j + 1]));
  }
  // With one crossover weight per position every particle keeps equal coefficients for
  // an expert's two modules: the spread is exactly 0 (checked below on the same run
  // without groups), so any spread at all is the groups' doing.
  EXPECT_GT(spread, 0.0f) << "g stayed module-uniform";
  DecodingEvaluator decoding(*per_module, adapters);
  absl::StatusOr<RunResult> one_weight =
      RunSwarm(per_module->InitialPositions(), utility, decoding, Options(5));
  ASSERT_TRUE(one_weight.ok()) << one_weight.status();
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(one_weight->best[2 * j], one_weight->best[2 * j + 1]) << "expert " << j;
  }
}

TEST(ParticleSpaceTest, InitialPositionsDecodeToTheExperts) {
  const std::vector<Adapter> experts = MakeRandomLoraExperts(3, 2, 8, 2, /*seed=*/4);
  auto weights = MakeSpace(experts, {});
  auto product = MakeSpace(experts, Coefficients(LoraDecoder::kLoraProduct));
  ASSERT_TRUE(weights && product);
  const DeltaTarget target = *AdapterDeltas(experts[1]);
  EXPECT_EQ(weights->Decode(weights->InitialPositions()[1])->values, experts[1].values);
  absl::StatusOr<Adapter> e1 = product->Decode(product->InitialPositions()[1]);
  ASSERT_TRUE(e1.ok()) << e1.status();
  EXPECT_GT(*DeltaWUtility(target, *e1), -1e-7);  // the same ΔW, written at rank Σ r_j
  EXPECT_EQ(weights->Describe(), "weights");
  EXPECT_EQ(MakeSpace(experts, Coefficients(LoraDecoder::kLoraProductSvd, 8, true))->Describe(),
            "coefficients/lora_product_svd(k=8)/per_module");
}

TEST(ParticleSpaceTest, Refusals) {
  const std::vector<Adapter> experts = MakeRandomLoraExperts(3, 2, 8, 2, /*seed=*/1);
  auto create = [](std::vector<Adapter> e, ParticleSpaceOptions o) {
    return ParticleSpace::Create(std::move(e), o).status();
  };
  EXPECT_THAT(create({}, {}).message(), HasSubstr("no experts"));

  // Another width: no space can combine it.
  std::vector<Adapter> wider = experts;
  wider[2] = MakeRandomLoraExperts(1, 2, 10, 2, 2)[0];
  for (const ParticleSpaceOptions& o :
       {ParticleSpaceOptions{}, Coefficients(LoraDecoder::kLinearAB),
        Coefficients(LoraDecoder::kLoraProduct)}) {
    absl::Status s = create(wider, o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), AnyOf(HasSubstr("expert 2"), HasSubstr("0 and 2"))) << s;
  }
  // Another rank: the products combine it, the same-schema spaces do not.
  std::vector<Adapter> ranks = experts;
  ranks[1] = MakeRandomLoraExperts(1, 2, 8, 3, 2)[0];
  EXPECT_THAT(create(ranks, {}).message(), HasSubstr("identical schemas"));
  EXPECT_THAT(create(ranks, Coefficients(LoraDecoder::kLinearAB)).message(),
              HasSubstr("identical schemas"));
  EXPECT_TRUE(create(ranks, Coefficients(LoraDecoder::kLoraProduct)).ok());
  // Not a LoRA: fine for the weights space, not for coefficients.
  std::vector<Adapter> bare = experts;
  for (Adapter& a : bare) {
    a.schema = Schema({{"w", DType::kF32, {static_cast<int64_t>(a.values.size())}}});
    a.config_json.reset();
  }
  EXPECT_TRUE(create(bare, {}).ok());
  EXPECT_FALSE(create(bare, Coefficients(LoraDecoder::kLoraProduct)).ok());

  for (int64_t k : {0, -1}) {
    EXPECT_THAT(create(experts, Coefficients(LoraDecoder::kLoraProductSvd, k)).message(),
                HasSubstr("svd_rank >= 1"));
  }
  EXPECT_THAT(create(experts, Coefficients(LoraDecoder::kLoraProduct, 4)).message(),
              HasSubstr("lora_product_svd"));
  ParticleSpaceOptions weights_per_module;
  weights_per_module.per_module = true;
  EXPECT_FALSE(create(experts, weights_per_module).ok());
  std::vector<Adapter> nan = experts;
  nan[1].values[3] = NAN;
  EXPECT_THAT(create(nan, {}).message(), HasSubstr("expert 1"));

  auto space = MakeSpace(experts, Coefficients(LoraDecoder::kLoraProduct, 0, true));
  ASSERT_TRUE(space);
  EXPECT_THAT(space->Decode(std::vector<float>(3, 0.f)).status().message(), HasSubstr("has 6"));
  std::vector<float> bad(6, 0.f);
  bad[2] = INFINITY;
  EXPECT_THAT(space->Decode(bad).status().message(), HasSubstr("not finite"));

  // A decode failure is an evaluation failure, not a crash.
  DeltaWEvaluator inner(*AdapterDeltas(experts[0]));
  DecodingEvaluator decoding(*space, inner);
  EXPECT_FALSE(decoding.Evaluate({0, 0, bad}).ok());
  SyntheticEvaluator synthetic(experts[0].values);
  FlatAdapterEvaluator flat(experts[0].schema, synthetic);
  Adapter other = ranks[1];
  EXPECT_FALSE(flat.Evaluate({0, 0, &other}).ok());
}

TEST(ParticleSpaceTest, DecoderNamesRoundTrip) {
  for (LoraDecoder d :
       {LoraDecoder::kLinearAB, LoraDecoder::kLoraProduct, LoraDecoder::kLoraProductSvd}) {
    EXPECT_EQ(*ParseLoraDecoder(LoraDecoderName(d)), d);
  }
  EXPECT_THAT(ParseLoraDecoder("cat").status().message(), HasSubstr("lora_product_svd"));
}

}  // namespace
}  // namespace wxp

namespace wxp {
namespace {

TEST(TokenMixtureSpaceTest, AlphaOverWholeModelsOfAnyShape) {
  // Experts of different schemas (ranks, widths): a token swarm needs none in common.
  std::vector<Adapter> experts = MakeRandomLoraExperts(2, 2, 24, 4, /*seed=*/1);
  std::vector<Adapter> other = MakeRandomLoraExperts(1, 3, 40, 2, /*seed=*/2);
  experts.push_back(other[0]);
  ParticleSpaceOptions o;
  o.kind = SpaceKind::kTokenMixture;
  o.combination = TokenCombination::kLogLinear;
  std::unique_ptr<ParticleSpace> space = MakeSpace(experts, o);
  ASSERT_NE(space, nullptr);
  EXPECT_EQ(space->Dimension(), 3);
  EXPECT_EQ(space->CrossoverGroups(), 1);
  EXPECT_EQ(space->InitialPositions(),
            (std::vector<std::vector<float>>{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}));
  EXPECT_EQ(space->Describe(), "token_mixture/log_linear");
  EXPECT_EQ(SpaceKindName(SpaceKind::kTokenMixture), "token_mixture");
  std::vector<float> alpha = {0.5, 0.5, 0};
  absl::StatusOr<Adapter> decoded = space->Decode(alpha);
  ASSERT_EQ(decoded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(decoded.status().message(), HasSubstr("manifest"));
}

TEST(TokenMixtureSpaceTest, RefusesCoefficientOptions) {
  const std::vector<Adapter> experts = MakeRandomLoraExperts(2, 2, 24, 4, /*seed=*/1);
  ParticleSpaceOptions o;
  o.kind = SpaceKind::kTokenMixture;
  o.per_module = true;
  EXPECT_EQ(ParticleSpace::Create(experts, o).status().code(), absl::StatusCode::kInvalidArgument);
  o.per_module = false;
  o.decoder = LoraDecoder::kLinearAB;
  EXPECT_EQ(ParticleSpace::Create(experts, o).status().code(), absl::StatusCode::kInvalidArgument);
  o.decoder = ParticleSpaceOptions().decoder;
  o.svd_rank = 4;
  EXPECT_EQ(ParticleSpace::Create(experts, o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wxp
