// Test helper: runs a wxpctl command (LibTorch ones included) in-process and captures its exit code
// and streams.
#ifndef WXP_CLIENT_ADMIN_RUN_FOR_TEST_H_
#define WXP_CLIENT_ADMIN_RUN_FOR_TEST_H_

#include <sstream>
#include <string>
#include <vector>

#include "client/admin/commands.h"
#include "client/admin/tensor_commands.h"

namespace wxp::admin {

struct CliOutput {
  int code;
  std::string out, err;
};

inline CliOutput RunCli(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int code = Run(args, out, err, &RunTensorCommand);
  return {code, out.str(), err.str()};
}

}  // namespace wxp::admin

#endif  // WXP_CLIENT_ADMIN_RUN_FOR_TEST_H_
