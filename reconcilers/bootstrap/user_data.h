// A node's cloud-init user-data (#cloud-config): its identity (hostname,
// FQDN; /etc/hosts is managed by the base phase), the lab's SSH keys, every
// file of NodeFiles (phase scripts, kubeadm, haproxy and keepalived
// configuration, the shared CA material on control planes), and a runcmd
// that runs the node's phases in order (/etc/vmlab/bootstrap.sh), writing
// markers to the serial console.
#pragma once

#include <string>

#include "crds/labcluster_types.h"
#include "reconcilers/bootstrap/lab_secrets.h"
#include "reconcilers/bootstrap/node_config.h"

namespace vmlab::reconcilers::bootstrap {

[[nodiscard]] std::string RenderUserData(const crds::LabCluster& lab, const crds::PlannedNode& node,
                                         const LabSecrets& secrets, const NodeEnvironment& env);

// `secrets` with every private key, the token and the keepalived password
// replaced by "<redacted ...>" placeholders (what `vmlab render` shows
// without --show-secrets). Certificates are public and kept.
[[nodiscard]] LabSecrets Redacted(const LabSecrets& secrets);

}  // namespace vmlab::reconcilers::bootstrap
