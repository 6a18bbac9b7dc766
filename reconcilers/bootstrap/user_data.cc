#include "reconcilers/bootstrap/user_data.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace vmlab::reconcilers::bootstrap {

std::string RenderUserData(const crds::LabCluster& lab, const crds::PlannedNode& node,
                           const LabSecrets& secrets, const NodeEnvironment& env) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "hostname" << YAML::Value << node.name;
  out << YAML::Key << "fqdn" << YAML::Value << node.name + "." + lab.spec.network.domain;
  out << YAML::Key << "prefer_fqdn_over_hostname" << YAML::Value << false;
  // The base phase keeps a vmlab block in /etc/hosts; cloud-init must not rewrite the file.
  out << YAML::Key << "manage_etc_hosts" << YAML::Value << false;
  if (!lab.spec.ssh_authorized_keys.empty()) {
    out << YAML::Key << "ssh_authorized_keys" << YAML::Value << YAML::BeginSeq;
    for (const auto& key : lab.spec.ssh_authorized_keys) out << key;
    out << YAML::EndSeq;
  }
  out << YAML::Key << "write_files" << YAML::Value << YAML::BeginSeq;
  for (const auto& file : NodeFiles(lab, node, secrets, env)) {
    out << YAML::BeginMap;
    out << YAML::Key << "path" << YAML::Value << file.path;
    out << YAML::Key << "owner" << YAML::Value << "root:root";
    out << YAML::Key << "permissions" << YAML::Value << YAML::SingleQuoted << file.permissions;
    out << YAML::Key << "content" << YAML::Value << YAML::Literal << file.content;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "runcmd" << YAML::Value << YAML::BeginSeq;
  out << YAML::Flow << YAML::BeginSeq << "/bin/bash"
      << "/etc/vmlab/bootstrap.sh" << YAML::EndSeq;
  out << YAML::EndSeq;
  out << YAML::EndMap;
  return fmt::format("#cloud-config\n{}\n", out.c_str());
}

LabSecrets Redacted(const LabSecrets& secrets) {
  LabSecrets out = secrets;
  const std::string key = "<redacted private key; vmlab render --show-secrets shows it>\n";
  out.ca.key_pem = key;
  out.front_proxy_ca.key_pem = key;
  out.etcd_ca.key_pem = key;
  out.service_account.private_pem = key;
  out.token = "<redacted token>";
  out.vrrp_password = "<redacted>";
  out.admin_kubeconfig = "<redacted>";
  out.progress_key = "<redacted>";
  return out;
}

}  // namespace vmlab::reconcilers::bootstrap
