#include "controller/render_command.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <fstream>
#include <sstream>

#include "controller/validate_command.h"
#include "crds/canonical.h"
#include "crds/labcluster_parse.h"
#include "reconcilers/infrastructure/lab_layout.h"
#include "reconcilers/bootstrap/user_data.h"
#include "reconcilers/infrastructure/libvirt_xml.h"
#include "reconcilers/infrastructure/seed.h"

namespace vmlab::controller {

namespace infra = reconcilers::infrastructure;

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
  for (const auto& doc : docs) {
    const crds::LabCluster& lab = *doc.object;
    const std::string hash = crds::SpecHash(lab.spec);
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
      const auto seed =
          infra::RenderSeedFiles(lab, node, reconcilers::bootstrap::RenderUserData(lab, node));
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
