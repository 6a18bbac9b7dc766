#include "crds/labcluster_types.h"

#include <fmt/format.h>

#include <charconv>

#include "crds/labcluster_rules.h"

namespace vmlab::crds {

std::string_view ToString(Cni value) {
  switch (value) {
    case Cni::kCalico:
      return "calico";
    case Cni::kCilium:
      return "cilium";
    case Cni::kBridge:
      return "bridge";
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

int KubernetesMinor(std::string_view version) {
  const auto first = version.find('.');
  if (first == std::string_view::npos) return 0;
  const auto rest = version.substr(first + 1);
  int minor = 0;
  std::from_chars(rest.data(), rest.data() + rest.size(), minor);
  return minor;
}

Ipv4Cidr BridgePodSubnet(const LabCluster& lab, std::uint64_t address) {
  const std::uint64_t host = address - lab.spec.network.cidr.network.value;
  const std::uint64_t block = std::uint64_t{1} << (32 - kBridgeNodeSubnetPrefix);
  return Ipv4Cidr{Ipv4Address{static_cast<std::uint32_t>(
                      lab.spec.kubernetes.pod_cidr.network.value + host * block)},
                  kBridgeNodeSubnetPrefix};
}

std::vector<std::uint64_t> NodeSlotAddresses(const LabCluster& lab) {
  const Ipv4Cidr& net = lab.spec.network.cidr;
  const std::uint64_t size = net.Size();
  std::vector<std::uint64_t> slots;
  // The last address is the broadcast address.
  for (std::uint64_t i = 1; i <= static_cast<std::uint64_t>(limits::kMaxControlPlanes); ++i) {
    const std::uint64_t offset = kControlPlaneOffset + i;
    if (offset + 1 >= size) break;
    slots.push_back(net.OffsetAddress(offset));
  }
  for (std::uint64_t i = 1; i <= static_cast<std::uint64_t>(limits::kMaxWorkers); ++i) {
    const std::uint64_t offset = kWorkerOffset + i;
    if (offset + 1 >= size) break;
    slots.push_back(net.OffsetAddress(offset));
  }
  return slots;
}

}  // namespace vmlab::crds
