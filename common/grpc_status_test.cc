#include "common/grpc_status.h"

#include "gtest/gtest.h"

namespace wxp {
namespace {

TEST(GrpcStatusTest, EveryCanonicalCodeRoundTrips) {
  for (int c = 1; c <= 16; ++c) {
    const absl::Status s(static_cast<absl::StatusCode>(c), "why");
    const grpc::Status g = ToGrpc(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), c);
    EXPECT_EQ(g.error_message(), "why");
    EXPECT_EQ(FromGrpc(g), s);
  }
  EXPECT_TRUE(ToGrpc(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpc(grpc::Status::OK).ok());
}

TEST(GrpcStatusTest, NamedCodesKeepTheirMeaning) {
  EXPECT_EQ(ToGrpc(absl::ResourceExhaustedError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ToGrpc(absl::UnavailableError("x")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(FromGrpc(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "x")).code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(GrpcStatusTest, UnknownCodesBecomeUnknownNamingTheNumber) {
  // 20: no canonical code, but a valid value of grpc::StatusCode (its enumerators span -1..16,
  // so the type holds -32..31); a value outside that is undefined behaviour to even hold.
  const absl::Status from = FromGrpc(grpc::Status(static_cast<grpc::StatusCode>(20), "odd"));
  EXPECT_EQ(from.code(), absl::StatusCode::kUnknown);
  EXPECT_NE(from.message().find("20"), std::string::npos) << from;
  EXPECT_NE(from.message().find("odd"), std::string::npos) << from;
  // absl::Status itself keeps no code outside the canonical range: it reads as UNKNOWN.
  const grpc::Status to = ToGrpc(absl::Status(static_cast<absl::StatusCode>(99), "odd"));
  EXPECT_EQ(to.error_code(), grpc::StatusCode::UNKNOWN);
}

}  // namespace
}  // namespace wxp
