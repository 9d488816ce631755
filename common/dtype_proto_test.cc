#include "common/dtype_proto.h"

#include "gtest/gtest.h"

namespace wxp {
namespace {

TEST(DTypeProtoTest, EveryDTypeRoundTrips) {
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64}) {
    absl::StatusOr<DType> back = DTypeFromProto(DTypeToProto(d));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, d);
  }
  EXPECT_EQ(DTypeToProto(DType::kBF16), wxp::v1::DTYPE_BF16);
}

TEST(DTypeProtoTest, UnknownValuesAreErrorsNamingTheValue) {
  absl::StatusOr<DType> unknown = DTypeFromProto(static_cast<wxp::v1::DType>(42));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("42"), std::string::npos) << unknown.status();
  EXPECT_EQ(DTypeFromProto(wxp::v1::DTYPE_UNSPECIFIED).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DTypeProtoTest, UnspecifiedTransportMeansTheSchemaDTypes) {
  absl::StatusOr<std::optional<DType>> keep = TransportDTypeFromProto(wxp::v1::DTYPE_UNSPECIFIED);
  ASSERT_TRUE(keep.ok());
  EXPECT_FALSE(keep->has_value());
  absl::StatusOr<std::optional<DType>> f16 = TransportDTypeFromProto(wxp::v1::DTYPE_F16);
  ASSERT_TRUE(f16.ok());
  EXPECT_EQ(**f16, DType::kF16);
  absl::StatusOr<std::optional<DType>> bad =
      TransportDTypeFromProto(static_cast<wxp::v1::DType>(9));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("9"), std::string::npos);
}

}  // namespace
}  // namespace wxp
