#include "reconcilers/infrastructure/preflight.h"

#include <fmt/format.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "reconcilers/infrastructure/identity.h"

namespace vmlab::reconcilers::infrastructure {
namespace {

// /proc/net/route writes addresses as host-order hex of network-order bytes.
std::optional<std::uint32_t> RouteAddress(const std::string& hex) {
  try {
    const auto raw = static_cast<std::uint32_t>(std::stoul(hex, nullptr, 16));
    return (raw & 0xffu) << 24 | ((raw >> 8) & 0xffu) << 16 | ((raw >> 16) & 0xffu) << 8 |
           (raw >> 24);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

std::vector<HostRoute> ReadHostRoutes(const std::string& path) {
  std::vector<HostRoute> routes;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string iface, destination, gateway, flags, refcnt, use, metric, mask;
    if (!(fields >> iface >> destination >> gateway >> flags >> refcnt >> use >> metric >> mask))
      continue;
    const auto dest = RouteAddress(destination);
    const auto netmask = RouteAddress(mask);
    if (!dest || !netmask || *netmask == 0) continue;  // the default route overlaps everything
    const crds::Ipv4Cidr cidr{crds::Ipv4Address{*dest}, __builtin_popcount(*netmask)};
    routes.push_back({iface, cidr.ToString()});
  }
  return routes;
}

std::optional<std::string> CheckPreflight(const PreflightInput& input) {
  const crds::LabCluster& lab = *input.lab;
  const auto& spec = lab.spec;
  const crds::Ipv4Cidr& net = spec.network.cidr;
  for (const auto& other : input.other_networks) {
    for (const auto& text : other.cidrs) {
      const auto cidr = crds::ParseIpv4Cidr(text);
      if (cidr && cidr->Overlaps(net)) {
        return fmt::format(
            "spec.network.cidr {} overlaps libvirt network \"{}\" ({}), which vmlab does "
            "not own; pick another range",
            net.ToString(), other.name, text);
      }
    }
  }
  for (const auto& route : input.routes) {
    if (route.interface == BridgeName(lab.metadata.name)) continue;  // the lab's own bridge
    const auto cidr = crds::ParseIpv4Cidr(route.cidr);
    if (cidr && cidr->Overlaps(net)) {
      return fmt::format(
          "spec.network.cidr {} overlaps the host route {} on {}; pick another range",
          net.ToString(), route.cidr, route.interface);
    }
  }
  if (input.host) {
    const int biggest =
        std::max(spec.control_plane.cpus, spec.workers.replicas > 0 ? spec.workers.cpus : 0);
    if (biggest > input.host->cpus) {
      return fmt::format("a node asks for {} vCPUs but the host has {} CPUs", biggest,
                         input.host->cpus);
    }
    const long long memory =
        static_cast<long long>(spec.control_plane.replicas) * spec.control_plane.memory_mib +
        static_cast<long long>(spec.workers.replicas) * spec.workers.memory_mib;
    if (memory > input.host->memory_mib) {
      return fmt::format(
          "the lab needs {} MiB of memory in all but the host has {} MiB; use fewer or "
          "smaller nodes",
          memory, input.host->memory_mib);
    }
  }
  if (input.check_base_image && access(spec.image.path.c_str(), R_OK) != 0) {
    return fmt::format(
        "base image {} is missing or unreadable; put a cloud image there or set "
        "spec.image.path",
        spec.image.path);
  }
  return std::nullopt;
}

}  // namespace vmlab::reconcilers::infrastructure
