// wxpctl's TensorCommandRunner (commands.h): replaces the process with wxpctl-tensors, which
// runs merge, simulate and legal with LibTorch loaded, so that every other command starts
// without it.
#ifndef WXP_CLIENT_ADMIN_TENSOR_EXEC_H_
#define WXP_CLIENT_ADMIN_TENSOR_EXEC_H_

#include <ostream>
#include <string>
#include <vector>

namespace wxp::admin {

// The binary's name; it is looked for next to the running executable first, then on PATH.
inline constexpr char kTensorBinary[] = "wxpctl-tensors";

// Flushes `out`, `err` and stdio, then execs kTensorBinary with `args`. Returns only when no
// kTensorBinary could be started: the error names where it was looked for, exit status 1.
int ExecTensorCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace wxp::admin

#endif  // WXP_CLIENT_ADMIN_TENSOR_EXEC_H_
