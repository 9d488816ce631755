// DeltaWUtility against dense ΔW arithmetic on small shapes.
#include "common/lora_synthetic.h"

#include <cmath>

#include "common/lora_layout.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wxp {
namespace {

using ::testing::HasSubstr;

std::vector<double> Dense(const FactoredDelta& d) {
  std::vector<double> w(d.out * d.in, 0.0);
  for (int64_t o = 0; o < d.out; ++o)
    for (int64_t p = 0; p < d.rank; ++p)
      for (int64_t i = 0; i < d.in; ++i) w[o * d.in + i] += d.b[o * d.rank + p] * d.a[p * d.in + i];
  return w;
}

double DenseUtility(const DeltaTarget& target, const Adapter& adapter) {
  const DeltaTarget deltas = *AdapterDeltas(adapter);
  double sq = 0, entries = 0;
  for (const auto& [name, t] : target) {
    const std::vector<double> tw = Dense(t), dw = Dense(deltas.at(name));
    for (size_t i = 0; i < tw.size(); ++i) sq += (dw[i] - tw[i]) * (dw[i] - tw[i]);
    entries += tw.size();
  }
  return -std::sqrt(sq / entries);
}

TEST(LoraSyntheticTest, RandomExpertsAreLoras) {
  const std::vector<Adapter> experts = MakeRandomLoraExperts(2, 3, 8, 2, 1);
  ASSERT_EQ(experts.size(), 2u);
  absl::StatusOr<LoraLayout> l = ParseLoraLayout(experts[0]);
  ASSERT_TRUE(l.ok()) << l.status();
  ASSERT_EQ(l->modules.size(), 3u);
  EXPECT_EQ(l->modules[0].rank, 2);
  EXPECT_DOUBLE_EQ(l->modules[0].scaling, 2.0);
  EXPECT_EQ(experts[0].schema, experts[1].schema);
  EXPECT_NE(experts[0].values, experts[1].values);
  EXPECT_EQ(MakeRandomLoraExperts(2, 3, 8, 2, 1)[1].values, experts[1].values);
}

TEST(LoraSyntheticTest, FactoredDistanceMatchesDenseArithmetic) {
  const std::vector<Adapter> experts = MakeRandomLoraExperts(3, 2, 6, 2, 4);
  absl::StatusOr<DeltaTarget> target = MakeDeltaTarget(experts, 4, 0.001);
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ(target->begin()->second.rank, 3 * 2 + 2);  // the experts' ranks plus the off term
  for (const Adapter& a : experts) {
    const double got = *DeltaWUtility(*target, a), want = DenseUtility(*target, a);
    EXPECT_NEAR(got, want, 1e-9 * std::fabs(want));
    EXPECT_LT(got, 0);
  }
  // An adapter scored against its own deltas sits on the target.
  EXPECT_NEAR(*DeltaWUtility(*AdapterDeltas(experts[0]), experts[0]), 0.0, 1e-7);
}

TEST(LoraSyntheticTest, UtilityDoesNotDependOnTheLoraBasis) {
  const std::vector<Adapter> experts = MakeRandomLoraExperts(2, 1, 6, 2, 8);
  const DeltaTarget target = *MakeDeltaTarget(experts, 8, 0.001);
  // B·Q and Q⁻¹·A with Q = diag(2, -0.5): the same ΔW, other factors.
  Adapter a = experts[0];
  const LoraModule m = ParseLoraLayout(a)->modules[0];
  float* fa = a.values.data() + a.schema.offset(m.a_tensor);
  float* fb = a.values.data() + a.schema.offset(m.b_tensor);
  const float q[2] = {2.0f, -0.5f};
  for (int64_t p = 0; p < 2; ++p)
    for (int64_t i = 0; i < m.in_features; ++i) fa[p * m.in_features + i] /= q[p];
  for (int64_t o = 0; o < m.out_features; ++o)
    for (int64_t p = 0; p < 2; ++p) fb[o * 2 + p] *= q[p];
  EXPECT_NE(a.values, experts[0].values);
  EXPECT_NEAR(*DeltaWUtility(target, a), *DeltaWUtility(target, experts[0]), 1e-7);
}

TEST(LoraSyntheticTest, ProductSpanReachesAnInSpanTargetAndBoundsTheExperts) {
  const std::vector<Adapter> experts = MakeRandomLoraExperts(3, 2, 6, 2, 5);
  const DeltaTarget in_span = *MakeDeltaTarget(experts, 5, 0);
  EXPECT_NEAR(*ProductSpanUtility(in_span, experts, false), 0.0, 1e-6);
  EXPECT_NEAR(*ProductSpanUtility(in_span, experts, true), 0.0, 1e-6);
  const DeltaTarget off = *MakeDeltaTarget(experts, 5, 0.01);
  const double span = *ProductSpanUtility(off, experts, false);
  const double per_module = *ProductSpanUtility(off, experts, true);
  EXPECT_LT(span, 0);
  EXPECT_GE(per_module, span - 1e-12);  // more freedom never hurts
  for (const Adapter& a : experts) EXPECT_GE(span, *DeltaWUtility(off, a) - 1e-12);
}

TEST(LoraSyntheticTest, RefusesOtherShapesAndNoise) {
  const std::vector<Adapter> experts = MakeRandomLoraExperts(2, 1, 6, 2, 8);
  const DeltaTarget target = *MakeDeltaTarget(experts, 8, 0);
  const Adapter wider = MakeRandomLoraExperts(1, 1, 7, 2, 8)[0];
  EXPECT_THAT(DeltaWUtility(target, wider).status().message(), HasSubstr("target's is [6, 6]"));
  EXPECT_FALSE(MakeDeltaTarget({}, 1, 0).ok());

  DeltaWEvaluator exact(target), noisy(target, 0.01, 3);
  const AdapterEvaluationRequest request{2, 5, &experts[0]};
  const double u = exact.Evaluate(request)->at(kDeltaWComponent);
  const double n1 = noisy.Evaluate(request)->at(kDeltaWComponent);
  EXPECT_NE(u, n1);
  EXPECT_EQ(n1, noisy.Evaluate(request)->at(kDeltaWComponent));
  EXPECT_FALSE(exact.Evaluate({0, 0, nullptr}).ok());
}

}  // namespace
}  // namespace wxp
