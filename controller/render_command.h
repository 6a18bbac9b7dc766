// `vmlab render PATH`: print what vmlab would define for a manifest (network
// XML, domain XML per node), touching nothing.
#pragma once

#include <ostream>
#include <string>

namespace vmlab::controller {

struct RenderOptions {
  std::string path;
  std::string node;          // empty: every node
  std::string what = "all";  // network | domain | user-data | all
  std::string state_dir = "/var/lib/vmlab";
  std::string domain_type = "qemu";  // kvm | qemu
};

// Exit codes as `vmlab validate`: 0 rendered, 1 invalid manifest or unknown node, 2 usage/I-O.
[[nodiscard]] int RunRender(const RenderOptions& options, std::ostream& out, std::ostream& err);

}  // namespace vmlab::controller
