// libFuzzer target: the renderers. Every valid manifest (random bytes and
// mutations of the examples) is rendered as vmlab would for libvirt and
// cloud-init - the network, the first and last node's domain, their NoCloud
// meta-data and network-config - and each output must parse back (libxml2,
// yaml-cpp) to the values it came from: the lab and node names, resources,
// the kernel command line, DHCP and DNS entries, the host name. A value that
// reached XML or YAML unescaped breaks the parse or changes what comes back.
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "crds/labcluster_parse.h"
#include "reconcilers/infrastructure/identity.h"
#include "reconcilers/infrastructure/lab_layout.h"
#include "reconcilers/infrastructure/libvirt_xml.h"
#include "reconcilers/infrastructure/seed.h"

namespace {

using namespace vmlab;
using namespace vmlab::reconcilers::infrastructure;

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "render_fuzzer: %s\n%.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

// The text of the first element named `name` anywhere in `xml`; fails when
// the document is not well-formed.
std::string ElementText(const std::string& xml, const char* name, bool* found) {
  xmlDocPtr doc = xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "render.xml", nullptr,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (!doc) Fail("not well-formed XML", xml);
  std::string out;
  *found = false;
  std::vector<xmlNodePtr> stack{xmlDocGetRootElement(doc)};
  while (!stack.empty() && !*found) {
    xmlNodePtr node = stack.back();
    stack.pop_back();
    for (; node; node = node->next) {
      if (node->type != XML_ELEMENT_NODE) continue;
      if (xmlStrEqual(node->name, reinterpret_cast<const xmlChar*>(name))) {
        xmlChar* text = xmlNodeGetContent(node);
        out = text ? reinterpret_cast<const char*>(text) : "";
        xmlFree(text);
        *found = true;
        break;
      }
      if (node->children) stack.push_back(node->children);
    }
  }
  xmlFreeDoc(doc);
  return out;
}

void CheckNode(const crds::LabCluster& lab, const crds::PlannedNode& node) {
  const bool control_plane = node.role == crds::NodeRole::kControlPlane;
  const std::string xml =
      RenderDomainXml(lab, node, HostConfigFor("/var/lib/vmlab", lab, node, "qemu"), "hash");
  bool found = false;
  if (ElementText(xml, "name", &found) != node.name || !found) Fail("domain name", xml);
  const auto owner = ParseOwnership(xml);
  if (!owner || owner->lab != lab.metadata.name || owner->node != node.name)
    Fail("domain ownership", xml);
  const auto resources = ParseDomainResources(xml);
  const int cpus = control_plane ? lab.spec.control_plane.cpus : lab.spec.workers.cpus;
  const int memory =
      control_plane ? lab.spec.control_plane.memory_mib : lab.spec.workers.memory_mib;
  if (!resources || resources->vcpus != cpus || resources->memory_mib != memory)
    Fail("domain resources", xml);
  const std::string cmdline = ElementText(xml, "cmdline", &found);
  if (found != !lab.spec.image.cmdline.empty() || cmdline != lab.spec.image.cmdline)
    Fail("kernel command line", xml);

  const SeedFiles seed = RenderSeedFiles(lab, node, "#cloud-config\n");
  try {
    const YAML::Node meta = YAML::Load(seed.meta_data);
    if (meta["local-hostname"].as<std::string>() != node.name) Fail("meta-data", seed.meta_data);
    const YAML::Node network = YAML::Load(seed.network_config);
    if (!network.IsMap() || !network["version"]) Fail("network-config", seed.network_config);
  } catch (const YAML::Exception& e) {
    Fail(e.what(), seed.meta_data + seed.network_config);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  xmlInitParser();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto docs = crds::ParseManifests("fuzz.yaml", text);
  for (const crds::ParsedDocument& doc : docs) {
    if (!doc.valid()) continue;
    const crds::LabCluster& lab = *doc.object;
    const std::string network = RenderNetworkXml(lab, "hash");
    bool found = false;
    if (ElementText(network, "name", &found) != NetworkName(lab.metadata.name))
      Fail("network name", network);
    const auto owner = ParseOwnership(network);
    if (!owner || owner->lab != lab.metadata.name) Fail("network ownership", network);
    const auto nodes = crds::PlanNodes(lab);
    const auto dhcp = ParseDhcpHosts(network);
    const auto dns = ParseDnsHosts(network);
    for (const auto& node : nodes) {
      if (!dhcp.contains(node.name) || !dns.contains(node.name)) Fail("network hosts", network);
    }
    if (!nodes.empty()) {
      CheckNode(lab, nodes.front());
      CheckNode(lab, nodes.back());
    }
  }
  return 0;
}
