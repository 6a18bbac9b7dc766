// A node's NoCloud seed: meta-data (instance id, hostname), network-config
// (version 2: the planned static address, gateway .1 and the lab network's DNS)
// and user-data, packed into an ISO 9660 image labelled "cidata" with Rock
// Ridge and Joliet names, as cloud-init's NoCloud datasource reads it. The
// image is built in memory with libisofs and uploaded into vmlab's pool.
#pragma once

#include <string>

#include "crds/labcluster_types.h"
#include "crds/result.h"

namespace vmlab::reconcilers::infrastructure {

struct SeedFiles {
  std::string meta_data;
  std::string network_config;
  std::string user_data;
};

// The seed of `node`; `user_data` is the node's cloud-init user-data.
[[nodiscard]] SeedFiles RenderSeedFiles(const crds::LabCluster& lab, const crds::PlannedNode& node,
                                        std::string user_data);

// The ISO 9660 image (volume id "cidata") holding meta-data, network-config
// and user-data. Deterministic: the same files give the same bytes.
[[nodiscard]] Result<std::string> BuildSeedIso(const SeedFiles& files);

}  // namespace vmlab::reconcilers::infrastructure
