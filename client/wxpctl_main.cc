// wxpctl: the WXP admin CLI. All behaviour lives in the commands library.
#include <iostream>

#include "client/admin/commands.h"

int main(int argc, char** argv) {
  return wxp::admin::Run(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
