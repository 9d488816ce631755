#include "common/text_proto.h"

#include "gtest/gtest.h"
#include "proto/agent_config.pb.h"
#include "proto/swarm_spec.pb.h"

namespace wxp {
namespace {

TEST(TextProtoTest, ParsesAValidFile) {
  v1::SwarmSpec spec;
  ASSERT_TRUE(ParseTextProto("name: \"q4\"\nutility { name: \"char_acc\" weight: 1 }\n",
                             "spec.textproto", &spec)
                  .ok());
  EXPECT_EQ(spec.name(), "q4");
  EXPECT_EQ(spec.utility(0).name(), "char_acc");
}

TEST(TextProtoTest, SyntaxErrorNamesFileTypeAndPosition) {
  v1::SwarmSpec spec;
  absl::Status s = ParseTextProto("name: \"q4\"\nno_such_field: 3\n", "/etc/spec.textproto", &spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("/etc/spec.textproto: not a text-format wxp.v1.SwarmSpec: line 2:"),
            std::string::npos)
      << s;
  EXPECT_NE(s.message().find("no_such_field"), std::string::npos) << s;
}

TEST(TextProtoTest, InvalidUtf8IsRefusedWithTheFieldPath) {
  v1::SwarmSpec spec;
  // Raw bytes in the file, and an escape that produces the same bytes.
  for (const std::string& text : {std::string("name: \"bad\xff\xfe\"\n"),
                                  std::string("utility { name: \"ok\" } utility { name: "
                                              "\"x\\377\" }\n")}) {
    absl::Status s = ParseTextProto(text, "spec.textproto", &spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(s.message().find("is not valid UTF-8"), std::string::npos) << s;
  }
  absl::Status nested = ParseTextProto("utility { name: \"ok\" } utility { name: \"x\\377\" }\n",
                                       "spec.textproto", &spec);
  EXPECT_NE(nested.message().find("field utility[1].name "), std::string::npos) << nested;
  v1::AgentConfig config;
  absl::Status in_map =
      ParseTextProto("external_command { argv: \"eval\" env { key: \"K\" value: \"\\300\\200\" } }",
                     "agent.textproto", &config);
  EXPECT_NE(in_map.message().find("env[0].value"), std::string::npos) << in_map;
}

TEST(TextProtoTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("Gesellschaft mbH \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\x80"));              // continuation first
  EXPECT_FALSE(IsValidUtf8("\xc0\x80"));          // overlong NUL
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xff"));
}

TEST(TextProtoTest, Utf8PrefixCutsOnCharacterBoundaries) {
  const std::string euros = "\xe2\x82\xac\xe2\x82\xac";  // two 3-byte characters
  EXPECT_EQ(Utf8Prefix(euros, 6), euros);
  EXPECT_EQ(Utf8Prefix(euros, 5), "\xe2\x82\xac");  // never half a character
  EXPECT_EQ(Utf8Prefix(euros, 2), "");
  EXPECT_EQ(Utf8Prefix("abc", 2), "ab");
  // Bytes that are no character become '?', so the result is always valid.
  EXPECT_EQ(Utf8Prefix("a\xff"
                       "b\xc3",
                       10),
            "a?b?");
  const std::string long_reason = std::string(1023, 'x') + "\xc3\xa9tail";
  const std::string cut = Utf8Prefix(long_reason, 1024);
  EXPECT_EQ(cut, std::string(1023, 'x'));
  EXPECT_TRUE(IsValidUtf8(cut));
}

}  // namespace
}  // namespace wxp
