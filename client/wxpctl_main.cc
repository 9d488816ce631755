// wxpctl: the WXP admin CLI. All behaviour lives in the commands library; the commands that
// need LibTorch run in wxpctl-tensors (client/admin/tensor_exec.h).
#include <cstdlib>
#include <iostream>

#include "client/admin/commands.h"
#include "client/admin/tensor_exec.h"

int main(int argc, char** argv) {
  // gRPC's own log lines ("Handshake failed ...") would repeat, less readably, the one-line
  // error wxpctl prints; GRPC_VERBOSITY set by the user still wins.
  setenv("GRPC_VERBOSITY", "NONE", /*overwrite=*/0);
  return wxp::admin::Run(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr,
                         &wxp::admin::ExecTensorCommand);
}
