// Where a lab's files live on the host: the vmlab storage pool (a folder
// under the state dir), each node's volumes and seed ISO, console logs.
#pragma once

#include <filesystem>
#include <string>

#include "crds/labcluster_types.h"
#include "reconcilers/infrastructure/libvirt_xml.h"

namespace vmlab::reconcilers::infrastructure {

inline constexpr const char* kPoolName = "vmlab";

struct NodeFiles {
  std::string root_volume;   // volume names in the pool
  std::string extra_volume;  // empty when the node has no data disk
  std::string seed_volume;
  std::filesystem::path console_log;
};

[[nodiscard]] std::filesystem::path PoolPath(const std::filesystem::path& state_dir);
// Where the nodes' serial consoles are logged: <state-dir>/console.
[[nodiscard]] std::filesystem::path ConsoleDir(const std::filesystem::path& state_dir);
[[nodiscard]] NodeFiles FilesFor(const std::filesystem::path& state_dir,
                                 const crds::LabCluster& lab, const crds::PlannedNode& node);
// The DomainHostConfig for `node`, with every path inside `state_dir`.
[[nodiscard]] DomainHostConfig HostConfigFor(const std::filesystem::path& state_dir,
                                             const crds::LabCluster& lab,
                                             const crds::PlannedNode& node,
                                             const std::string& domain_type);

}  // namespace vmlab::reconcilers::infrastructure
