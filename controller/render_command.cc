#include "controller/render_command.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "controller/validate_command.h"
#include "crds/canonical.h"
#include "crds/labcluster_parse.h"
#include "reconcilers/bootstrap/lab_secrets.h"
#include "reconcilers/bootstrap/user_data.h"
#include "reconcilers/cache/cache_sets.h"
#include "reconcilers/infrastructure/lab_layout.h"
#include "reconcilers/infrastructure/libvirt_xml.h"
#include "reconcilers/infrastructure/seed.h"

namespace vmlab::controller {

namespace infra = reconcilers::infrastructure;
namespace bootstrap = reconcilers::bootstrap;

int RunRender(const RenderOptions& options, std::ostream& out, std::ostream& err) {
  std::ifstream in(options.path, std::ios::binary);
  if (!in) {
    fmt::print(err, "{}: error: cannot read the file\n", options.path);
    return kExitUsage;
  }
  std::ostringstream text;
  text << in.rdbuf();
  auto docs = crds::ParseManifests(options.path, text.str());
  crds::ValidateManifestSet(docs);
  bool invalid = false;
  for (const auto& doc : docs) {
    for (const auto& d : doc.diagnostics) {
      if (d.severity == crds::Severity::kError) {
        fmt::print(err, "{}\n", crds::FormatDiagnostic(d));
        invalid = true;
      }
    }
  }
  if (invalid) return kExitInvalid;

  bool node_found = options.node.empty();
  if (options.what == "downloads") {
    for (const auto& doc : docs) {
      const crds::LabCluster& lab = *doc.object;
      // The host files the spec names, read as the controller reads them.
      std::map<std::string, std::string> files;
      std::vector<std::string> paths = lab.spec.addons;
      paths.push_back(lab.spec.kubernetes.cni_manifest);
      for (const auto& path : paths) {
        if (!path.starts_with('/')) continue;
        std::ifstream file(path, std::ios::binary);
        std::ostringstream content;
        if (file && content << file.rdbuf()) files[path] = content.str();
      }
      std::set<crds::NodeRole> roles;
      for (const auto& node : crds::PlanNodes(lab)) {
        if (!options.node.empty() && node.name != options.node) continue;
        node_found = true;
        roles.insert(node.role);
      }
      for (const auto role : roles) {
        fmt::print(out, "---\n# lab {}, {} nodes: what they download (derived from the spec)\n",
                   lab.metadata.name, crds::ToString(role));
        fmt::print(out, "packages:\n");
        for (const auto& p : reconcilers::cache::PackageSet(lab, role)) {
          fmt::print(out, "  - {}{}\n", p.name,
                     p.source == reconcilers::cache::PackageSource::kKubernetes
                         ? fmt::format("={}  # pkgs.k8s.io, any -N revision", p.version)
                         : "");
        }
        const auto images = reconcilers::cache::ImagesFor(lab, role, files);
        fmt::print(out, "images:\n");
        for (const auto& image : images.images) fmt::print(out, "  - {}\n", image);
        for (const auto& note : images.notes) fmt::print(out, "# note: {}\n", note);
      }
    }
    if (!node_found) {
      fmt::print(err, "vmlab render: no node named {} in {}\n", options.node, options.path);
      return kExitInvalid;
    }
    return kExitValid;
  }
  for (const auto& doc : docs) {
    const crds::LabCluster& lab = *doc.object;
    const std::string hash = crds::SpecHash(lab.spec);
    std::optional<bootstrap::LabSecrets> secrets;
    if ((options.what == "network" || options.what == "all") && options.node.empty()) {
      fmt::print(out, "<!-- network of lab {} -->\n{}", lab.metadata.name,
                 infra::RenderNetworkXml(lab, hash));
    }
    for (const auto& node : crds::PlanNodes(lab)) {
      if (!options.node.empty() && node.name != options.node) continue;
      node_found = true;
      if (options.what == "domain" || options.what == "all") {
        fmt::print(
            out, "<!-- domain {} -->\n{}", node.name,
            infra::RenderDomainXml(
                lab, node, infra::HostConfigFor(options.state_dir, lab, node, options.domain_type),
                hash));
      }
      if (options.what == "network" || options.what == "domain") continue;
      if (!secrets) {
        auto found = bootstrap::SecretStore(options.state_dir).Load(lab.metadata.name);
        if (found && *found) {
          secrets = std::move(**found);
          fmt::print(out, "# secrets of lab {}: from {}{}\n", lab.metadata.name,
                     bootstrap::SecretStore(options.state_dir).Dir(lab.metadata.name).string(),
                     options.show_secrets ? "" : " (redacted; --show-secrets shows them)");
        } else {
          auto made = bootstrap::MakeLabSecrets(lab, std::chrono::system_clock::now());
          if (!made) {
            fmt::print(err, "vmlab render: {}\n", made.error().message);
            return kExitUsage;
          }
          secrets = std::move(*made);
          fmt::print(out,
                     "# secrets of lab {}: made for this render only; the controller makes the "
                     "lab's own once{}\n",
                     lab.metadata.name,
                     options.show_secrets ? "" : " (redacted; --show-secrets shows them)");
        }
        if (!options.show_secrets) secrets = bootstrap::Redacted(*secrets);
      }
      bootstrap::NodeEnvironment env;
      for (const auto& path : lab.spec.addons) {
        if (path.starts_with('/')) env.host_files[path] = "# (contents of " + path + ")\n";
      }
      if (lab.spec.kubernetes.cni_manifest.starts_with('/')) {
        env.host_files[lab.spec.kubernetes.cni_manifest] =
            "# (contents of " + lab.spec.kubernetes.cni_manifest + ")\n";
      }
      const auto seed =
          infra::RenderSeedFiles(lab, node, bootstrap::RenderUserData(lab, node, *secrets, env));
      if (options.what == "seed" || options.what == "all") {
        fmt::print(out, "# {} seed: meta-data\n{}# {} seed: network-config\n{}", node.name,
                   seed.meta_data, node.name, seed.network_config);
      }
      if (options.what == "seed" || options.what == "user-data" || options.what == "all") {
        fmt::print(out, "# {} seed: user-data\n{}", node.name, seed.user_data);
      }
    }
  }
  if (!node_found) {
    fmt::print(err, "vmlab render: no node named {} in {}\n", options.node, options.path);
    return kExitInvalid;
  }
  return kExitValid;
}

}  // namespace vmlab::controller
