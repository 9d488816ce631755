#include "common/dp_record.h"

#include "gtest/gtest.h"

namespace wxp::dp {
namespace {

PrivacyRecord Sample() {
  absl::StatusOr<PrivacyRecord> r =
      MakePrivacyRecord({{"finetune", 0.004, 1.1, 1.0, 1000}}, 1e-5, 16000);
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

TEST(DpRecordTest, EpsilonIsTheAccountantsComposition) {
  const PrivacyRecord r = Sample();
  absl::StatusOr<PrivacySpent> want = ComputeEpsilon({{0.004, 1.1, 1000}}, 1e-5);
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(r.epsilon, want->epsilon);
  EXPECT_GT(r.epsilon, 0);
  absl::StatusOr<PrivacyRecord> two = MakePrivacyRecord(
      {{"finetune", 0.004, 1.1, 1.0, 1000}, {"local_training", 0.01, 2.0, 1.0, 50}}, 1e-5, 16000);
  ASSERT_TRUE(two.ok());
  EXPECT_GT(two->epsilon, r.epsilon);  // composition only adds
}

TEST(DpRecordTest, RoundTripsThroughMetadata) {
  const PrivacyRecord r = Sample();
  SafetensorsMetadata m = {{"format", "pt"}};
  absl::StatusOr<std::optional<PrivacyRecord>> none = FindPrivacyRecord(m);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  SetPrivacyRecord(r, &m);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].first, "format");  // other keys kept, in order
  EXPECT_EQ(m[1].first, "wxp_dp");
  absl::StatusOr<std::optional<PrivacyRecord>> back = FindPrivacyRecord(m);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ((*back)->epsilon, r.epsilon);
  EXPECT_EQ((*back)->delta, 1e-5);
  EXPECT_EQ((*back)->examples, 16000);
  ASSERT_EQ((*back)->phases.size(), 1u);
  EXPECT_EQ((*back)->phases[0].what, "finetune");
  EXPECT_EQ((*back)->phases[0].noise_multiplier, 1.1);
  EXPECT_EQ((*back)->phases[0].steps, 1000);
  // Setting again replaces rather than duplicates.
  PrivacyRecord other = r;
  other.examples = 5;
  SetPrivacyRecord(other, &m);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ((*FindPrivacyRecord(m))->examples, 5);
}

TEST(DpRecordTest, RefusesMalformedAndOverclaimingRecords) {
  const std::string good = EncodePrivacyRecord(Sample());
  ASSERT_TRUE(DecodePrivacyRecord(good).ok());
  auto code = [](const std::string& text) { return DecodePrivacyRecord(text).status().code(); };
  const auto bad = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code("not json"), bad);
  EXPECT_EQ(code("[1]"), bad);
  EXPECT_EQ(code("{}"), bad);
  PrivacyRecord r = Sample();
  r.delta = 0;
  EXPECT_EQ(code(EncodePrivacyRecord(r)), bad);
  r = Sample();
  r.accountant = "moments";
  EXPECT_EQ(code(EncodePrivacyRecord(r)), bad);
  r = Sample();
  r.phases.clear();
  EXPECT_EQ(code(EncodePrivacyRecord(r)), bad);
  r = Sample();
  r.phases[0].clip_norm = 0;
  EXPECT_EQ(code(EncodePrivacyRecord(r)), bad);
  // A record claiming less than its own phases spend.
  r = Sample();
  r.epsilon = r.epsilon / 2;
  const absl::Status s = DecodePrivacyRecord(EncodePrivacyRecord(r)).status();
  EXPECT_EQ(s.code(), bad);
  EXPECT_NE(s.message().find("but its phases spend"), std::string::npos);
  // A bad record in metadata is an error naming the key, not "not private".
  absl::StatusOr<std::optional<PrivacyRecord>> f = FindPrivacyRecord({{"wxp_dp", "{}"}});
  EXPECT_EQ(f.status().code(), bad);
  EXPECT_NE(f.status().message().find("wxp_dp"), std::string::npos);
}

TEST(DpRecordTest, DescribesForPeople) {
  EXPECT_EQ(DescribePrivacy(std::nullopt), "not private");
  PrivacyRecord r = Sample();
  r.epsilon = 4;  // shown with two decimals
  EXPECT_EQ(DescribePrivacy(r),
            "eps=4.00 delta=1e-05 sigma=1.1 C=1 q=0.004 steps=1000 examples=16000 "
            "accountant=rdp-poisson-sgm");
  r.phases.push_back({"local_training", 0.01, 2.0, 1.0, 50});
  EXPECT_EQ(DescribePrivacy(r),
            "eps=4.00 delta=1e-05 phases=2 steps=1050 examples=16000 accountant=rdp-poisson-sgm");
}

}  // namespace
}  // namespace wxp::dp
