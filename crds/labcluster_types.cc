#include "crds/labcluster_types.h"

#include <fmt/format.h>

namespace vmlab::crds {

std::string_view ToString(Cni value) {
  switch (value) {
    case Cni::kCalico:
      return "calico";
    case Cni::kCilium:
      return "cilium";
    case Cni::kNone:
      return "none";
  }
  return "";
}

std::string_view ToString(DriftPolicy value) {
  return value == DriftPolicy::kRemediate ? "Remediate" : "Report";
}

std::string_view ToString(DeletionPolicy value) {
  return value == DeletionPolicy::kDelete ? "Delete" : "Retain";
}

std::string_view ToString(NodeRole value) {
  return value == NodeRole::kControlPlane ? "control-plane" : "worker";
}

std::vector<PlannedNode> PlanNodes(const LabCluster& lab) {
  const auto& spec = lab.spec;
  std::vector<PlannedNode> nodes;
  nodes.reserve(static_cast<std::size_t>(spec.control_plane.replicas + spec.workers.replicas));
  for (int i = 1; i <= spec.control_plane.replicas; ++i) {
    nodes.push_back(
        {fmt::format("{}-cp-{}", lab.metadata.name, i), NodeRole::kControlPlane, i,
         spec.network.cidr.OffsetAddress(kControlPlaneOffset + static_cast<std::uint64_t>(i))});
  }
  for (int i = 1; i <= spec.workers.replicas; ++i) {
    nodes.push_back(
        {fmt::format("{}-worker-{}", lab.metadata.name, i), NodeRole::kWorker, i,
         spec.network.cidr.OffsetAddress(kWorkerOffset + static_cast<std::uint64_t>(i))});
  }
  return nodes;
}

}  // namespace vmlab::crds
