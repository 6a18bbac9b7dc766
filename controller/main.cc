// The vmlab executable. The only place that picks concrete implementations.
#include <iostream>

#include "controller/cli.h"

int main(int argc, char** argv) {
  return vmlab::controller::RunCli(argc, argv, std::cout, std::cerr);
}
