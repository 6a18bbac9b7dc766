#include "reconcilers/infrastructure/lab_layout.h"

namespace vmlab::reconcilers::infrastructure {

std::filesystem::path PoolPath(const std::filesystem::path& state_dir) {
  return state_dir / "pool";
}

std::filesystem::path ConsoleDir(const std::filesystem::path& state_dir) {
  return state_dir / "console";
}

crds::PlannedNode GoldenBuilderNode(const crds::LabCluster& lab) {
  return {lab.metadata.name + "-golden", crds::NodeRole::kWorker, 0,
          lab.spec.network.cidr.OffsetAddress(kGoldenBuilderOffset)};
}

std::filesystem::path GoldenImagePath(const std::filesystem::path& state_dir,
                                      const std::string& key) {
  return PoolPath(state_dir) / ("golden-" + key.substr(0, 16) + ".qcow2");
}

NodeFiles FilesFor(const std::filesystem::path& state_dir, const crds::LabCluster& lab,
                   const crds::PlannedNode& node) {
  NodeFiles files;
  files.root_volume = node.name + "-root.qcow2";
  if (node.role == crds::NodeRole::kWorker && node.index > 0 &&
      lab.spec.workers.extra_disk_gib > 0) {
    files.extra_volume = node.name + "-data.qcow2";
  }
  files.seed_volume = node.name + "-seed.iso";
  files.console_log = ConsoleDir(state_dir) / (node.name + ".log");
  return files;
}

DomainHostConfig HostConfigFor(const std::filesystem::path& state_dir, const crds::LabCluster& lab,
                               const crds::PlannedNode& node, const std::string& domain_type) {
  const NodeFiles files = FilesFor(state_dir, lab, node);
  const std::filesystem::path pool = PoolPath(state_dir);
  DomainHostConfig host;
  host.domain_type = domain_type;
  host.root_disk = (pool / files.root_volume).string();
  if (!files.extra_volume.empty()) host.extra_disk = (pool / files.extra_volume).string();
  host.seed_iso = (pool / files.seed_volume).string();
  host.console_log = files.console_log.string();
  return host;
}

}  // namespace vmlab::reconcilers::infrastructure
