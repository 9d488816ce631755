#include "common/grpc_status.h"

#include "common/leader_redirect.h"
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

// A redirect crosses the wire as a typed detail: the client reads the leader's address from
// it, not from the message.
TEST(GrpcStatusTest, ALeaderRedirectRoundTripsAsAnErrorDetail) {
  const grpc::Status g = ToGrpc(LeaderRedirectError("s1", "10.0.0.2:7443", "replica-b"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_FALSE(g.error_details().empty());
  const absl::Status back = FromGrpc(grpc::Status(g.error_code(), "reworded", g.error_details()));
  std::optional<wxp::v1::LeaderRedirect> r = LeaderRedirectOf(back);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->swarm(), "s1");
  EXPECT_EQ(r->leader_address(), "10.0.0.2:7443");
  EXPECT_EQ(r->leader_replica_id(), "replica-b");
  // Plain errors carry no details; details that do not parse are dropped.
  EXPECT_TRUE(ToGrpc(absl::UnavailableError("x")).error_details().empty());
  EXPECT_FALSE(LeaderRedirectOf(FromGrpc(grpc::Status(grpc::StatusCode::UNAVAILABLE, "x",
                                                      std::string("\xff\xff", 2))))
                   .has_value());
}

}  // namespace
}  // namespace wxp
