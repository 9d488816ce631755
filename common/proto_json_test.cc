#include "common/proto_json.h"

#include "google/protobuf/struct.pb.h"
#include "gtest/gtest.h"
#include "proto/wxp.pb.h"

namespace wxp {
namespace {

TEST(ProtoJsonTest, UsesProtoFieldNamesAndPrintsZeros) {
  wxp::v1::ParticleInfo p;
  p.set_owner("firm-a");
  p.set_best_utility(0.5);
  const std::string json = ProtoJson(p);
  EXPECT_NE(json.find("\"best_utility\": 0.5"), std::string::npos) << json;
  EXPECT_NE(json.find("\"restarts\": 0"), std::string::npos) << json;
  EXPECT_NE(json.find("\"owner\": \"firm-a\""), std::string::npos) << json;
  EXPECT_NE(json.back(), '\n');
}

}  // namespace
}  // namespace wxp
