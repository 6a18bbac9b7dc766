// Pre-flight checks before a lab (or more of its nodes) is created: whatever
// fails here is reported as a condition and nothing is created, so a lab is
// never left half-built for a reason known up front. Pure functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "crds/labcluster_types.h"
#include "reconcilers/infrastructure/hypervisor.h"

namespace vmlab::reconcilers::infrastructure {

struct HostRoute {
  std::string interface;
  std::string cidr;  // "a.b.c.d/n"
};

// The host's IPv4 routes from /proc/net/route, without the default route.
[[nodiscard]] std::vector<HostRoute> ReadHostRoutes(const std::string& path = "/proc/net/route");

struct PreflightInput {
  const crds::LabCluster* lab = nullptr;
  std::optional<HostInfo> host;             // null: capacity not checked
  std::vector<NetworkInfo> other_networks;  // libvirt networks the lab does not own
  std::vector<HostRoute> routes;
  bool check_base_image = false;  // the image lives on this host
};

// Why the lab cannot be created, or nullopt.
[[nodiscard]] std::optional<std::string> CheckPreflight(const PreflightInput& input);

}  // namespace vmlab::reconcilers::infrastructure
