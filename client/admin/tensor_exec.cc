#include "client/admin/tensor_exec.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "client/admin/command_util.h"

namespace wxp::admin {

int ExecTensorCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  out.flush();
  err.flush();
  std::fflush(nullptr);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(kTensorBinary));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  // Next to this executable first (an installed pair, or bazel-bin), so a wxpctl-tensors of
  // another version on PATH is not picked up by accident.
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::string sibling;
  if (!ec) {
    sibling = (self.parent_path() / kTensorBinary).string();
    execv(sibling.c_str(), argv.data());
  }
  const int sibling_errno = ec ? ENOENT : errno;
  execvp(kTensorBinary, argv.data());
  const int path_errno = errno;
  err << "wxpctl: '" << (args.empty() ? std::string() : args[0]) << "' runs in " << kTensorBinary
      << " (it loads LibTorch), which could not be started: "
      << (sibling.empty() ? std::string("this executable's directory is unknown")
                          : sibling + ": " + std::strerror(sibling_errno))
      << "; on PATH: " << std::strerror(path_errno) << ". Install " << kTensorBinary
      << " beside wxpctl (bazel build //client:wxpctl-tensors).\n";
  return kExitFailure;
}

}  // namespace wxp::admin
