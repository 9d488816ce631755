// wxpctl-tensors: wxpctl with the commands that need LibTorch (merge, simulate, legal) linked
// in; wxpctl execs it for those. Any other command runs here as in wxpctl.
#include <cstdlib>
#include <iostream>

#include "client/admin/commands.h"
#include "client/admin/tensor_commands.h"

int main(int argc, char** argv) {
  setenv("GRPC_VERBOSITY", "NONE", /*overwrite=*/0);
  return wxp::admin::Run(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr,
                         &wxp::admin::RunTensorCommand);
}
