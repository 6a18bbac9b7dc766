#include "reconcilers/infrastructure/libvirt_xml.h"

#include <fmt/format.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <cstdlib>
#include <memory>

#include "reconcilers/infrastructure/identity.h"

namespace vmlab::reconcilers::infrastructure {
namespace {

const xmlChar* X(const char* text) { return reinterpret_cast<const xmlChar*>(text); }

using XmlDocPtr = std::unique_ptr<xmlDoc, void (*)(xmlDocPtr)>;

// Parses XML that libvirt handed back; null when it is not well-formed.
XmlDocPtr ParseXml(const std::string& xml) {
  return XmlDocPtr(xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "libvirt.xml", nullptr,
                                 XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING),
                   xmlFreeDoc);
}

// Calls `fn` for each element child of `parent` named `name`.
template <typename Fn>
void ForEachElement(const xmlNode* parent, const char* name, Fn fn) {
  for (const xmlNode* node = parent ? parent->children : nullptr; node; node = node->next) {
    if (node->type == XML_ELEMENT_NODE && xmlStrEqual(node->name, X(name))) fn(node);
  }
}

// A libxml2 document under construction; Dump() renders the root element.
class XmlDoc {
 public:
  explicit XmlDoc(const char* root_name) : doc_(xmlNewDoc(X("1.0"))) {
    xmlDocSetRootElement(doc_, xmlNewNode(nullptr, X(root_name)));
  }
  ~XmlDoc() { xmlFreeDoc(doc_); }
  XmlDoc(const XmlDoc&) = delete;
  XmlDoc& operator=(const XmlDoc&) = delete;

  [[nodiscard]] xmlNodePtr root() const { return xmlDocGetRootElement(doc_); }
  [[nodiscard]] std::string Dump() const {
    std::unique_ptr<xmlBuffer, void (*)(xmlBufferPtr)> buffer(xmlBufferCreate(), xmlBufferFree);
    xmlNodeDump(buffer.get(), doc_, root(), 0, 1);
    return std::string(reinterpret_cast<const char*>(xmlBufferContent(buffer.get()))) + "\n";
  }

 private:
  xmlDocPtr doc_;
};

xmlNodePtr Child(xmlNodePtr parent, const char* name, const std::string& text = {}) {
  xmlNodePtr node = xmlNewChild(parent, nullptr, X(name), nullptr);
  if (!text.empty()) xmlNodeAddContent(node, X(text.c_str()));  // escapes
  return node;
}

xmlNodePtr Attr(xmlNodePtr node, const char* name, const std::string& value) {
  xmlSetProp(node, X(name), X(value.c_str()));  // escapes
  return node;
}

void AddOwner(xmlNodePtr parent, const Ownership& owner) {
  xmlNodePtr metadata = Child(parent, "metadata");
  xmlNodePtr element = xmlNewChild(metadata, nullptr, X("owner"), nullptr);
  xmlSetNs(element, xmlNewNs(element, X(kOwnerNamespace), X(kOwnerPrefix)));
  Attr(element, "lab", owner.lab);
  if (!owner.node.empty()) Attr(element, "node", owner.node);
  if (!owner.role.empty()) Attr(element, "role", owner.role);
  Attr(element, "specHash", owner.spec_hash);
}

std::string Ip(std::uint64_t address) {
  return crds::Ipv4Address{static_cast<std::uint32_t>(address)}.ToString();
}

void AddDhcpHost(xmlNodePtr dhcp, const crds::LabCluster& lab, const crds::PlannedNode& node) {
  xmlNodePtr host = Child(dhcp, "host");
  Attr(host, "mac", MacAddress(lab.metadata.name, node.name));
  Attr(host, "name", node.name);
  Attr(host, "ip", Ip(node.address));
}

void AddDnsHost(xmlNodePtr dns, const crds::LabCluster& lab, const crds::PlannedNode& node) {
  xmlNodePtr host = Attr(Child(dns, "host"), "ip", Ip(node.address));
  Child(host, "hostname", node.name);
  Child(host, "hostname", fmt::format("{}.{}", node.name, lab.spec.network.domain));
}

// One element, without formatting (for libvirt's update API).
std::string DumpNode(xmlNodePtr node) {
  std::unique_ptr<xmlBuffer, void (*)(xmlBufferPtr)> buffer(xmlBufferCreate(), xmlBufferFree);
  xmlNodeDump(buffer.get(), node->doc, node, 0, 0);
  return reinterpret_cast<const char*>(xmlBufferContent(buffer.get()));
}

const xmlNode* FindOwner(const xmlNode* node) {
  for (; node; node = node->next) {
    if (node->type == XML_ELEMENT_NODE && node->ns && node->ns->href &&
        xmlStrEqual(node->ns->href, X(kOwnerNamespace)) && xmlStrEqual(node->name, X("owner"))) {
      return node;
    }
    if (const xmlNode* found = FindOwner(node->children)) return found;
  }
  return nullptr;
}

std::string Prop(const xmlNode* node, const char* name) {
  xmlChar* value = xmlGetProp(node, X(name));
  if (!value) return "";
  std::string out(reinterpret_cast<const char*>(value));
  xmlFree(value);
  return out;
}

}  // namespace

std::string RenderNetworkXml(const crds::LabCluster& lab, const std::string& spec_hash) {
  const auto& spec = lab.spec;
  const auto& net = spec.network;
  XmlDoc doc("network");
  xmlNodePtr root = doc.root();
  Child(root, "name", NetworkName(lab.metadata.name));
  AddOwner(root, {lab.metadata.name, "", "", spec_hash});
  Attr(Child(root, "forward"), "mode", "nat");
  Attr(Attr(Attr(Child(root, "bridge"), "name", BridgeName(lab.metadata.name)), "stp", "on"),
       "delay", "0");
  Attr(Attr(Child(root, "domain"), "name", net.domain), "localOnly", "yes");

  const auto nodes = crds::PlanNodes(lab);
  xmlNodePtr dns = Child(root, "dns");
  const auto& endpoint = spec.control_plane.endpoint;
  xmlNodePtr vip = Attr(Child(dns, "host"), "ip", endpoint.vip.ToString());
  Child(vip, "hostname", endpoint.host);
  Child(vip, "hostname", fmt::format("{}.{}", endpoint.host, net.domain));
  for (const auto& node : nodes) AddDnsHost(dns, lab, node);

  xmlNodePtr ip = Child(root, "ip");
  Attr(ip, "address", Ip(net.cidr.OffsetAddress(crds::kGatewayOffset)));
  Attr(ip, "prefix", std::to_string(net.cidr.prefix_length));
  xmlNodePtr dhcp = Child(ip, "dhcp");
  for (const auto& node : nodes) AddDhcpHost(dhcp, lab, node);
  return doc.Dump();
}

std::string RenderDhcpHostXml(const crds::LabCluster& lab, const crds::PlannedNode& node) {
  XmlDoc doc("dhcp");
  AddDhcpHost(doc.root(), lab, node);
  return DumpNode(doc.root()->children);
}

std::string RenderDnsHostXml(const crds::LabCluster& lab, const crds::PlannedNode& node) {
  XmlDoc doc("dns");
  AddDnsHost(doc.root(), lab, node);
  return DumpNode(doc.root()->children);
}

std::vector<std::string> ParseNetworkCidrs(const std::string& xml) {
  std::vector<std::string> out;
  const XmlDocPtr doc = ParseXml(xml);
  if (!doc) return out;
  ForEachElement(xmlDocGetRootElement(doc.get()), "ip", [&](const xmlNode* ip) {
    const auto address = crds::ParseIpv4Address(Prop(ip, "address"));
    if (!address) return;  // IPv6 or malformed
    int prefix = -1;
    if (const std::string p = Prop(ip, "prefix"); !p.empty()) {
      prefix = std::atoi(p.c_str());
    } else if (const auto mask = crds::ParseIpv4Address(Prop(ip, "netmask"))) {
      prefix = __builtin_popcount(mask->value);
    }
    if (prefix < 0 || prefix > 32) return;
    const crds::Ipv4Cidr probe{crds::Ipv4Address{0}, prefix};
    const crds::Ipv4Cidr cidr{crds::Ipv4Address{address->value & probe.Mask()}, prefix};
    out.push_back(cidr.ToString());
  });
  return out;
}

std::map<std::string, std::string> ParseDhcpHosts(const std::string& xml) {
  std::map<std::string, std::string> out;
  const XmlDocPtr doc = ParseXml(xml);
  if (!doc) return out;
  ForEachElement(xmlDocGetRootElement(doc.get()), "ip", [&](const xmlNode* ip) {
    ForEachElement(ip, "dhcp", [&](const xmlNode* dhcp) {
      ForEachElement(dhcp, "host",
                     [&](const xmlNode* host) { out[Prop(host, "name")] = Prop(host, "ip"); });
    });
  });
  return out;
}

std::map<std::string, std::string> ParseDnsHosts(const std::string& xml) {
  std::map<std::string, std::string> out;
  const XmlDocPtr doc = ParseXml(xml);
  if (!doc) return out;
  ForEachElement(xmlDocGetRootElement(doc.get()), "dns", [&](const xmlNode* dns) {
    ForEachElement(dns, "host", [&](const xmlNode* host) {
      bool first = true;
      ForEachElement(host, "hostname", [&](const xmlNode* name) {
        if (!first) return;
        first = false;
        xmlChar* text = xmlNodeGetContent(name);
        if (text) out[reinterpret_cast<const char*>(text)] = Prop(host, "ip");
        xmlFree(text);
      });
    });
  });
  return out;
}

std::string RenderDomainXml(const crds::LabCluster& lab, const crds::PlannedNode& node,
                            const DomainHostConfig& host, const std::string& spec_hash) {
  const auto& spec = lab.spec;
  const bool control_plane = node.role == crds::NodeRole::kControlPlane;
  const int cpus = control_plane ? spec.control_plane.cpus : spec.workers.cpus;
  const int memory = control_plane ? spec.control_plane.memory_mib : spec.workers.memory_mib;

  XmlDoc doc("domain");
  xmlNodePtr root = doc.root();
  Attr(root, "type", host.domain_type);
  Child(root, "name", node.name);
  Child(root, "uuid", DomainUuid(lab.metadata.name, node.name));
  AddOwner(root, {lab.metadata.name, node.name, std::string(crds::ToString(node.role)), spec_hash});
  Attr(Child(root, "memory", std::to_string(memory)), "unit", "MiB");
  Attr(Child(root, "currentMemory", std::to_string(memory)), "unit", "MiB");
  Attr(Child(root, "vcpu", std::to_string(cpus)), "placement", "static");

  xmlNodePtr os = Child(root, "os");
  Attr(Attr(Child(os, "type", "hvm"), "arch", "x86_64"), "machine", "q35");
  if (!spec.image.kernel.empty()) {
    Child(os, "kernel", spec.image.kernel);
    if (!spec.image.initrd.empty()) Child(os, "initrd", spec.image.initrd);
    if (!spec.image.cmdline.empty()) Child(os, "cmdline", spec.image.cmdline);
  }
  Attr(Child(os, "boot"), "dev", "hd");
  xmlNodePtr features = Child(root, "features");
  Child(features, "acpi");
  Child(features, "apic");
  if (host.domain_type == "kvm") {
    Attr(Child(root, "cpu"), "mode", "host-passthrough");
  } else if (host.domain_type == "qemu") {
    xmlNodePtr cpu = Attr(Attr(Child(root, "cpu"), "mode", "custom"), "match", "exact");
    Attr(Child(cpu, "model", "qemu64"), "fallback", "allow");
  }
  Child(root, "on_poweroff", "destroy");
  Child(root, "on_reboot", "restart");
  Child(root, "on_crash", "destroy");

  xmlNodePtr devices = Child(root, "devices");
  auto disk = [&](const std::string& path, const char* format, const char* device,
                  const char* target, const char* bus) {
    xmlNodePtr d = Attr(Attr(Child(devices, "disk"), "type", "file"), "device", device);
    Attr(Attr(Child(d, "driver"), "name", "qemu"), "type", format);
    Attr(Child(d, "source"), "file", path);
    Attr(Attr(Child(d, "target"), "dev", target), "bus", bus);
    if (std::string_view(device) == "cdrom") Child(d, "readonly");
  };
  disk(host.root_disk, "qcow2", "disk", "vda", "virtio");
  if (!host.extra_disk.empty()) disk(host.extra_disk, "qcow2", "disk", "vdb", "virtio");
  if (!host.seed_iso.empty()) disk(host.seed_iso, "raw", "cdrom", "sda", "sata");

  xmlNodePtr nic = Attr(Child(devices, "interface"), "type", "network");
  Attr(Child(nic, "mac"), "address", MacAddress(lab.metadata.name, node.name));
  Attr(Child(nic, "source"), "network", NetworkName(lab.metadata.name));
  Attr(Child(nic, "model"), "type", "virtio");

  if (!host.console_log.empty()) {
    xmlNodePtr serial = Attr(Child(devices, "serial"), "type", "file");
    Attr(Child(serial, "source"), "path", host.console_log);
    Attr(Child(serial, "target"), "port", "0");
  }
  xmlNodePtr agent = Attr(Child(devices, "channel"), "type", "unix");
  Attr(Attr(Child(agent, "target"), "type", "virtio"), "name", "org.qemu.guest_agent.0");
  xmlNodePtr rng = Attr(Child(devices, "rng"), "model", "virtio");
  Attr(Child(rng, "backend", "/dev/urandom"), "model", "random");
  return doc.Dump();
}

std::string RenderVolumeXml(const std::string& name, int capacity_gib,
                            const std::string& backing_path, const std::string& backing_format) {
  XmlDoc doc("volume");
  xmlNodePtr root = doc.root();
  Child(root, "name", name);
  Attr(Child(root, "capacity", std::to_string(capacity_gib)), "unit", "GiB");
  Child(root, "allocation", "0");  // sparse: a copy-on-write overlay starts empty
  xmlNodePtr target = Child(root, "target");
  Attr(Child(target, "format"), "type", "qcow2");
  if (!backing_path.empty()) {
    xmlNodePtr backing = Child(root, "backingStore");
    Child(backing, "path", backing_path);
    Attr(Child(backing, "format"), "type", backing_format);
  }
  return doc.Dump();
}

std::string RenderRawVolumeXml(const std::string& name, std::size_t bytes) {
  XmlDoc doc("volume");
  xmlNodePtr root = doc.root();
  Child(root, "name", name);
  Attr(Child(root, "capacity", std::to_string(bytes)), "unit", "bytes");
  xmlNodePtr target = Child(root, "target");
  Attr(Child(target, "format"), "type", "raw");
  // Seeds carry the lab's CA keys and join token: owner-only.
  Child(Child(target, "permissions"), "mode", "0600");
  return doc.Dump();
}

namespace {

const xmlNode* FindElement(const xmlNode* node, const char* name) {
  for (; node; node = node->next) {
    if (node->type == XML_ELEMENT_NODE && xmlStrEqual(node->name, X(name))) return node;
  }
  return nullptr;
}

std::string Text(const xmlNode* node) {
  if (!node) return "";
  xmlChar* content = xmlNodeGetContent(node);
  std::string out = content ? reinterpret_cast<const char*>(content) : "";
  xmlFree(content);
  return out;
}

}  // namespace

std::optional<DomainResources> ParseDomainResources(const std::string& xml) {
  const XmlDocPtr doc = ParseXml(xml);
  if (!doc) return std::nullopt;
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (!root) return std::nullopt;
  const xmlNode* memory = FindElement(root->children, "memory");
  const xmlNode* vcpu = FindElement(root->children, "vcpu");
  if (!memory || !vcpu) return std::nullopt;
  try {
    const std::string unit = Prop(memory, "unit");
    const double amount = std::stod(Text(memory));
    double mib = amount / 1024;  // libvirt's default unit is KiB
    if (unit == "MiB" || unit == "M") mib = amount;
    if (unit == "GiB" || unit == "G") mib = amount * 1024;
    if (unit == "b" || unit == "bytes") mib = amount / 1024 / 1024;
    return DomainResources{std::stoi(Text(vcpu)), static_cast<int>(mib)};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<Ownership> ParseOwnership(const std::string& xml) {
  const XmlDocPtr doc = ParseXml(xml);
  if (!doc) return std::nullopt;
  const xmlNode* owner = FindOwner(xmlDocGetRootElement(doc.get()));
  if (!owner) return std::nullopt;
  Ownership out{Prop(owner, "lab"), Prop(owner, "node"), Prop(owner, "role"),
                Prop(owner, "specHash")};
  if (out.lab.empty()) return std::nullopt;
  return out;
}

KvmVerdict ParseKvmVerdict(const std::string& xml) {
  const XmlDocPtr doc = ParseXml(xml);
  const xmlNode* root = doc ? xmlDocGetRootElement(doc.get()) : nullptr;
  if (!root || Text(FindElement(root->children, "domain")) != "kvm") {
    return {false, "libvirt reports no KVM domain capabilities"};
  }
  std::string usable;
  std::vector<std::string> disabled;
  ForEachElement(root, "cpu", [&](const xmlNode* cpu) {
    ForEachElement(cpu, "mode", [&](const xmlNode* mode) {
      const std::string name = Prop(mode, "name");
      if (name == "custom") {
        ForEachElement(mode, "model", [&](const xmlNode* model) {
          if (Text(model) == "qemu64") usable = Prop(model, "usable");
        });
      } else if (name == "host-model") {
        ForEachElement(mode, "feature", [&](const xmlNode* feature) {
          if (Prop(feature, "policy") == "disable") disabled.push_back(Prop(feature, "name"));
        });
      }
    });
  });
  if (usable == "yes") return {true, "KVM can run the x86-64 baseline CPU"};
  std::string reason = "KVM is present but cannot run the x86-64 baseline CPU model qemu64";
  if (!disabled.empty()) {
    reason += " (the host CPU lacks";
    for (const auto& f : disabled) reason += " " + f;
    reason += ")";
  }
  return {false, reason};
}

}  // namespace vmlab::reconcilers::infrastructure
