// The controller's config file (`vmlab controller --config FILE`): a YAML
// mapping of the controller's long option names to values, so a systemd unit
// carries no long command line.
//
//   watch: /var/lib/vmlab/labs
//   libvirt: qemu:///system
//   registry-mirror: [docker.io=http://mirror.example:5000]
//   simulate-guests: false
//
// The file only supplies values; the command line parses them with the same
// checks as flags, and a flag given on the command line wins over the file.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "crds/result.h"

namespace vmlab::controller {

struct ConfigEntry {
  std::string key;                  // an option's long name, without "--"
  std::vector<std::string> values;  // a scalar is one value; a sequence, several
  bool sequence = false;
  int line = 0;  // 1-based position of the key in the file
  int column = 0;
};

// Reads FILE. Errors (unreadable, not YAML, not a mapping of names to scalars
// or sequences of scalars, a name given twice) read
// "FILE:LINE:COL: error: KEY: what to do".
[[nodiscard]] Result<std::vector<ConfigEntry>> ReadConfigFile(const std::filesystem::path& path);

}  // namespace vmlab::controller
