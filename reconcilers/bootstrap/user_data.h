// A node's cloud-init user-data (#cloud-config). Today: the node's identity
// (hostname, FQDN), the lab's SSH keys, and a console marker that proves the
// user-data ran; the per-role Kubernetes phases (base, control-plane endpoint,
// primary, secondary, worker) are added here by the bootstrap work.
#pragma once

#include <string>

#include "crds/labcluster_types.h"

namespace vmlab::reconcilers::bootstrap {

// The marker line the node writes to its serial console once cloud-init has
// run its user-data: "vmlab: user-data done on <node>".
[[nodiscard]] std::string UserDataDoneMarker(const std::string& node);

[[nodiscard]] std::string RenderUserData(const crds::LabCluster& lab,
                                         const crds::PlannedNode& node);

}  // namespace vmlab::reconcilers::bootstrap
