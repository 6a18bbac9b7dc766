#include "reconcilers/bootstrap/user_data.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace vmlab::reconcilers::bootstrap {

std::string UserDataDoneMarker(const std::string& node) {
  return fmt::format("vmlab: user-data done on {}", node);
}

std::string RenderUserData(const crds::LabCluster& lab, const crds::PlannedNode& node) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "hostname" << YAML::Value << node.name;
  out << YAML::Key << "fqdn" << YAML::Value << node.name + "." + lab.spec.network.domain;
  out << YAML::Key << "prefer_fqdn_over_hostname" << YAML::Value << false;
  if (!lab.spec.ssh_authorized_keys.empty()) {
    out << YAML::Key << "ssh_authorized_keys" << YAML::Value << YAML::BeginSeq;
    for (const auto& key : lab.spec.ssh_authorized_keys) out << key;
    out << YAML::EndSeq;
  }
  // Node names are DNS labels (validated), so the marker needs no shell quoting
  // beyond the single quotes around it.
  out << YAML::Key << "runcmd" << YAML::Value << YAML::BeginSeq;
  out << YAML::Flow << YAML::BeginSeq << "sh" << "-c"
      << fmt::format("echo '{}' > /dev/ttyS0", UserDataDoneMarker(node.name)) << YAML::EndSeq;
  out << YAML::EndSeq;
  out << YAML::EndMap;
  return fmt::format("#cloud-config\n{}\n", out.c_str());
}

}  // namespace vmlab::reconcilers::bootstrap
