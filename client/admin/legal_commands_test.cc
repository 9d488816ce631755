// `wxpctl legal` dispatch and argument handling (the cheap paths: no model is trained here;
// client/legal's tests cover training and scoring).
#include "client/admin/run_for_test.h"
#include "gtest/gtest.h"

namespace wxp::admin {
namespace {

TEST(LegalCommandsTest, ShardsListsLicenceFamilies) {
  CliOutput r = RunCli({"legal", "shards"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* family : {"GPL", "LGPL", "GFDL", "MPL", "Apache"}) {
    EXPECT_NE(r.out.find(std::string("\n") + family + " "), std::string::npos) << family;
  }
}

TEST(LegalCommandsTest, UsageErrors) {
  EXPECT_EQ(RunCli({"legal"}).code, 2);
  EXPECT_EQ(RunCli({"legal", "frobnicate"}).code, 2);
  EXPECT_EQ(RunCli({"legal", "finetune", "--work_dir", "/tmp"}).code, 2);  // no --shard/--out
  EXPECT_EQ(RunCli({"legal", "eval", "--work_dir", "/tmp"}).code, 2);      // no --adapter
  EXPECT_EQ(RunCli({"legal", "pretrain", "--threads", "0"}).code, 2);
  CliOutput help = RunCli({"legal", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("finetune"), std::string::npos);
}

TEST(LegalCommandsTest, BadCorpusFailsWithOneLine) {
  CliOutput r = RunCli({"legal", "shards", "--corpus_dir", "/nonexistent/wxp"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.rfind("wxpctl: ", 0), 0u);
  CliOutput e = RunCli({"legal", "eval", "--work_dir", "/tmp", "--adapter", "/nonexistent/a"});
  EXPECT_EQ(e.code, 1);
}

}  // namespace
}  // namespace wxp::admin
