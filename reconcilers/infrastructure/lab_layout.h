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

// The folders qemu opens files in (the state dir, the pool, the console
// folder): on a distribution's libvirt, qemu runs as its own user
// (libvirt-qemu) and libvirt hands it each disk and log file (dynamic
// ownership), so it must be able to pass through them; nobody but root can
// list them (0711), and every file in them is 0600 (secrets stay in 0700
// folders such as pki/).
inline constexpr std::filesystem::perms kQemuTraversable =
    std::filesystem::perms::owner_all | std::filesystem::perms::group_exec |
    std::filesystem::perms::others_exec;

// spec.cache.goldenImage: the short-lived VM that builds a golden base image
// for the lab's key, on the lab's network: <lab>-golden at offset 2 of the
// network (below the VIP and the nodes), sized like a worker, no data disk.
inline constexpr std::uint64_t kGoldenBuilderOffset = 2;
[[nodiscard]] crds::PlannedNode GoldenBuilderNode(const crds::LabCluster& lab);
// A golden image in the pool: golden-<first 16 hex of the key>.qcow2 (no lab's
// volume can have that name: lab volumes end in -root/-data/-seed).
[[nodiscard]] std::filesystem::path GoldenImagePath(const std::filesystem::path& state_dir,
                                                    const std::string& key);
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
