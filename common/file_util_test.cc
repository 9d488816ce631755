#include "common/file_util.h"

#include <filesystem>
#include <vector>

#include "gtest/gtest.h"

namespace wxp {
namespace {

namespace fs = std::filesystem;

std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/file_util_test_" + name;
  fs::remove_all(dir);
  EXPECT_TRUE(MakeDirs(dir).ok());
  return dir;
}

TEST(FileUtilTest, ReadFileErrors) {
  const std::string dir = FreshDir("read");
  EXPECT_EQ(ReadFile(dir + "/missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadFile(dir).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FileUtilTest, AtomicWriteReplacesAndLeavesNoTemporaries) {
  const std::string dir = FreshDir("write");
  const std::string path = dir + "/f";
  ASSERT_TRUE(WriteFileAtomically(path, "old contents").ok());
  const std::vector<absl::string_view> pieces = {"ab", "", "cde"};
  ASSERT_TRUE(WriteFileAtomically(path, pieces).ok());
  EXPECT_EQ(*ReadFile(path), "abcde");
  ASSERT_TRUE(WriteFileAtomically(path, "").ok());
  EXPECT_EQ(*ReadFile(path), "");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++entries;
    EXPECT_EQ(e.path().filename(), "f");
  }
  EXPECT_EQ(entries, 1);
}

TEST(FileUtilTest, AtomicWriteIntoMissingDirectoryFails) {
  const std::string dir = FreshDir("nodir");
  absl::Status s = WriteFileAtomically(dir + "/absent/f", "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("absent/f"), std::string::npos) << s.message();
}

TEST(FileUtilTest, MakeDirsIsRecursiveAndIdempotent) {
  const std::string dir = FreshDir("mkdirs");
  ASSERT_TRUE(MakeDirs(dir + "/a/b/c").ok());
  EXPECT_TRUE(fs::is_directory(dir + "/a/b/c"));
  EXPECT_TRUE(MakeDirs(dir + "/a/b/c").ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/file", "x").ok());
  EXPECT_FALSE(MakeDirs(dir + "/file").ok());
}

TEST(FileUtilTest, ConfigPathsAreRelativeToTheConfigFile) {
  EXPECT_EQ(ResolveRelativeTo("/etc/wxp/server.textproto", "certs/ca.crt"),
            "/etc/wxp/certs/ca.crt");
  EXPECT_EQ(ResolveRelativeTo("conf/agent.textproto", "work"), "conf/work");
  EXPECT_EQ(ResolveRelativeTo("/etc/wxp/server.textproto", "/var/lib/wxp"), "/var/lib/wxp");
  EXPECT_EQ(ResolveRelativeTo("/etc/wxp/server.textproto", ""), "");
  // A config in the working directory: its relative paths are the working directory's.
  EXPECT_EQ(ResolveRelativeTo("server.textproto", "certs/ca.crt"), "certs/ca.crt");
}

}  // namespace
}  // namespace wxp
