#include "server/service/parsed_request.h"

#include <string>

#include "gtest/gtest.h"
#include "proto/wxp.pb.h"

namespace wxp::server {
namespace {

// Serialized messages with a string field holding `bad` bytes. The generated serializer
// does not check UTF-8 in release builds, but to be independent of that the bytes are
// written by hand: tag, length, bytes.
std::string LengthDelimited(int field, const std::string& bytes) {
  std::string out;
  out.push_back(static_cast<char>(field << 3 | 2));
  out.push_back(static_cast<char>(bytes.size()));  // short payloads only
  return out + bytes;
}

const std::string kBad = "sw\xff\xfe";

TEST(ExplainUnparsableTest, NamesATopLevelStringField) {
  absl::Status s = ExplainUnparsable(*wxp::v1::JoinRequest::descriptor(), LengthDelimited(1, kBad));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "request is not a valid wxp.v1.JoinRequest: string field swarm is not valid UTF-8");
}

TEST(ExplainUnparsableTest, IndexesRepeatedFields) {
  const std::string bytes =
      LengthDelimited(1, "s") + LengthDelimited(2, "ok") + LengthDelimited(2, kBad);
  absl::Status s = ExplainUnparsable(*wxp::v1::JoinRequest::descriptor(), bytes);
  EXPECT_NE(s.message().find("string field expert_blob_ids[1] is not valid UTF-8"),
            std::string::npos)
      << s;
}

TEST(ExplainUnparsableTest, FollowsNestedMessagesAndMapKeys) {
  // CreateSwarmRequest.spec (1) -> SwarmSpec.utility (6) [0] -> UtilityComponent.name (1).
  const std::string component = LengthDelimited(1, kBad);
  const std::string spec = LengthDelimited(1, "s") + LengthDelimited(6, component);
  absl::Status s =
      ExplainUnparsable(*wxp::v1::CreateSwarmRequest::descriptor(), LengthDelimited(1, spec));
  EXPECT_NE(s.message().find("string field spec.utility[0].name is not valid UTF-8"),
            std::string::npos)
      << s;

  // ReportRequest.scores (5) is a map<string, double>: entry key (1).
  s = ExplainUnparsable(*wxp::v1::ReportRequest::descriptor(),
                        LengthDelimited(5, LengthDelimited(1, kBad)));
  EXPECT_NE(s.message().find("string field scores[0].key is not valid UTF-8"), std::string::npos)
      << s;
}

TEST(ExplainUnparsableTest, BytesFieldsMayHoldAnything) {
  // UploadBlobRequest.chunk (2) -> BlobChunk.data (2) is `bytes`.
  const std::string bytes = LengthDelimited(2, LengthDelimited(2, kBad));
  EXPECT_TRUE(ExplainUnparsable(*wxp::v1::UploadBlobRequest::descriptor(), bytes).ok());
}

TEST(ExplainUnparsableTest, GarbageIsNotAMessage) {
  absl::Status s = ExplainUnparsable(*wxp::v1::JoinRequest::descriptor(), "\x0a\x7f");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not a protocol buffer"), std::string::npos) << s;
}

TEST(ParseRequestTest, ParsesAValidRequestAndExplainsAnInvalidOne) {
  wxp::v1::JoinRequest in;
  in.set_swarm("s1");
  in.set_capacity(3);
  const std::string wire = in.SerializeAsString();
  grpc::Slice slice(wire);
  grpc::ByteBuffer ok(&slice, 1);
  wxp::v1::JoinRequest out;
  ASSERT_TRUE(ParseRequest(&ok, &out).ok());
  EXPECT_EQ(out.swarm(), "s1");
  EXPECT_EQ(out.capacity(), 3);

  const std::string bad_wire = LengthDelimited(1, kBad);
  grpc::Slice bad_slice(bad_wire);
  grpc::ByteBuffer bad(&bad_slice, 1);
  absl::Status s = ParseRequest(&bad, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("string field swarm is not valid UTF-8"), std::string::npos) << s;

  s = ParseRequest(nullptr, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wxp::server
