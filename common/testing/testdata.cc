#include "common/testing/testdata.h"

#include <cstdlib>
#include <filesystem>

namespace wxp::testing {

std::optional<std::string> SharedTestdataDir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (const char* env = std::getenv("WXP_TESTDATA"); env != nullptr && *env != '\0') {
    if (fs::is_directory(env, ec)) return std::string(env);
  }
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr || workspace == nullptr) return std::nullopt;
  const fs::path marker = fs::path(srcdir) / workspace / "README.md";
  const fs::path real = fs::canonical(marker, ec);
  if (ec) return std::nullopt;
  const fs::path dir = real.parent_path().parent_path() / "shared" / "testdata";
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  return dir.string();
}

}  // namespace wxp::testing
