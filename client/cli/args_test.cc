#include "client/cli/args.h"

#include "gtest/gtest.h"

namespace wxp::cli {
namespace {

const std::vector<FlagSpec> kFlags = {
    {"json", "machine output", true},
    {"out", "output dir"},
    {"density", "keep fraction", false, "0.5"},
    {"weights", "weights"},
};

TEST(ArgsTest, ParsesEveryFlagSpelling) {
  auto p =
      ParseArgs({"a", "--json", "--out", "d1", "--density=0.25", "b", "--weights=1,2.5"}, kFlags);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->GetBool("json"));
  EXPECT_EQ(p->Get("out"), "d1");
  EXPECT_DOUBLE_EQ(*p->GetDouble("density"), 0.25);
  EXPECT_EQ(*p->GetDoubleList("weights"), (std::vector<double>{1, 2.5}));
  EXPECT_EQ(p->positional(), (std::vector<std::string>{"a", "b"}));
}

TEST(ArgsTest, RepeatedFlagsKeepEveryValue) {
  auto p = ParseArgs({"--out", "a", "--out=b,c", "--out", "d"}, kFlags);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->GetAll("out"), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(p->Get("out"), "d");
  EXPECT_TRUE(p->GetAll("weights").empty());
}

TEST(ArgsTest, DefaultsAndDoubleDash) {
  auto p = ParseArgs({"--", "--json"}, kFlags);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->GetBool("json"));
  EXPECT_FALSE(p->Has("density"));
  EXPECT_DOUBLE_EQ(*p->GetDouble("density"), 0.5);
  EXPECT_EQ(p->positional(), (std::vector<std::string>{"--json"}));
  EXPECT_TRUE(p->GetDoubleList("weights")->empty());
}

TEST(ArgsTest, RejectsUnknownMissingAndMalformed) {
  auto unknown = ParseArgs({"--nope"}, kFlags);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("--nope"), std::string::npos);
  EXPECT_FALSE(ParseArgs({"--out"}, kFlags).ok());
  auto bad = ParseArgs({"--density=abc", "--weights=1,x"}, kFlags);
  ASSERT_TRUE(bad.ok());
  EXPECT_FALSE(bad->GetDouble("density").ok());
  EXPECT_FALSE(bad->GetDoubleList("weights").ok());
  EXPECT_FALSE(bad->GetInt("density").ok());
  EXPECT_EQ(ParseArgs({"--help"}, kFlags).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace wxp::cli
