// `vmlab render PATH`: print what vmlab would make for a manifest (network
// XML, domain XML and NoCloud seed per node), touching nothing. The seeds use
// the lab's secrets from the state dir when the controller made them, else
// secrets made for this render only; secrets are redacted unless asked for.
#pragma once

#include <ostream>
#include <string>

namespace vmlab::controller {

struct RenderOptions {
  std::string path;
  std::string node;          // empty: every node
  std::string what = "all";  // network | domain | seed | user-data | all
  std::string state_dir = "/var/lib/vmlab";
  std::string domain_type = "qemu";  // kvm | qemu
  bool show_secrets = false;
};

// Exit codes as `vmlab validate`: 0 rendered, 1 invalid manifest or unknown node, 2 usage/I-O.
[[nodiscard]] int RunRender(const RenderOptions& options, std::ostream& out, std::ostream& err);

}  // namespace vmlab::controller
