// Locating ../shared/testdata (real adapters written by other tools) from a Bazel test.
#ifndef WXP_COMMON_TESTING_TESTDATA_H_
#define WXP_COMMON_TESTING_TESTDATA_H_

#include <optional>
#include <string>

namespace wxp::testing {

// $WXP_TESTDATA if set; otherwise shared/testdata beside the workspace, found through the
// runfiles symlink of //:README.md (a test using this must list it in `data`). nullopt when
// neither exists, so the test can skip with a message.
std::optional<std::string> SharedTestdataDir();

}  // namespace wxp::testing

#endif  // WXP_COMMON_TESTING_TESTDATA_H_
