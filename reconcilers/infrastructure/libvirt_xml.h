// The libvirt XML vmlab defines for a lab: its NAT network, each node's
// domain, and storage volumes. Pure functions of the spec and a few host
// facts (paths, domain type); written with libxml2, so every value is escaped.
// Every object carries vmlab's ownership element in <metadata> (kOwnerNamespace).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "crds/labcluster_types.h"

namespace vmlab::reconcilers::infrastructure {

inline constexpr const char* kOwnerNamespace = "https://vmlab.io/xmlns/libvirt/1";
inline constexpr const char* kOwnerPrefix = "vmlab";

// Host-side facts a domain needs.
struct DomainHostConfig {
  std::string domain_type = "qemu";  // "kvm" or "qemu" (libvirt's test driver takes either)
  std::string root_disk;             // path of the node's qcow2 root volume
  std::string extra_disk;            // data disk path, empty for none
  std::string seed_iso;              // NoCloud seed, empty for none
  std::string console_log;           // serial console file
};

// The lab's network: NAT, bridge, gateway .1, static DHCP host entries
// (MAC -> IP -> name) and DNS host entries for the endpoint and every node.
[[nodiscard]] std::string RenderNetworkXml(const crds::LabCluster& lab,
                                           const std::string& spec_hash);

// One node's domain.
[[nodiscard]] std::string RenderDomainXml(const crds::LabCluster& lab,
                                          const crds::PlannedNode& node,
                                          const DomainHostConfig& host,
                                          const std::string& spec_hash);

// A qcow2 volume of `capacity_gib`, copy-on-write over `backing` when given.
[[nodiscard]] std::string RenderVolumeXml(const std::string& name, int capacity_gib,
                                          const std::string& backing_path,
                                          const std::string& backing_format);

// A raw volume of exactly `bytes` bytes, mode 0600 (a seed image uploaded into it).
[[nodiscard]] std::string RenderRawVolumeXml(const std::string& name, std::size_t bytes);

// vmlab's ownership element found in an object's XML (lab, node, role, spec hash).
struct Ownership {
  std::string lab;
  std::string node;
  std::string role;
  std::string spec_hash;
};
[[nodiscard]] std::optional<Ownership> ParseOwnership(const std::string& xml);

// One node's static DHCP entry (<host mac= name= ip=/>) and DNS host entry
// (<host ip=><hostname>NAME</hostname><hostname>FQDN</hostname></host>), as in
// RenderNetworkXml, for live network updates.
[[nodiscard]] std::string RenderDhcpHostXml(const crds::LabCluster& lab,
                                            const crds::PlannedNode& node);
[[nodiscard]] std::string RenderDnsHostXml(const crds::LabCluster& lab,
                                           const crds::PlannedNode& node);

// The static DHCP entries of a network definition: host name -> IP.
[[nodiscard]] std::map<std::string, std::string> ParseDhcpHosts(const std::string& xml);
// The DNS host entries of a network definition: first host name -> IP.
[[nodiscard]] std::map<std::string, std::string> ParseDnsHosts(const std::string& xml);

// The IPv4 subnets of a network definition (<ip address= prefix=|netmask=>), "a.b.c.d/n".
[[nodiscard]] std::vector<std::string> ParseNetworkCidrs(const std::string& xml);

// vCPUs and memory of a domain definition (its persistent configuration).
struct DomainResources {
  int vcpus = 0;
  int memory_mib = 0;
};
[[nodiscard]] std::optional<DomainResources> ParseDomainResources(const std::string& xml);

// Whether KVM can really run vmlab's guests, from libvirt's domain
// capabilities for virttype kvm: every x86-64 CPU that KVM supports can run
// the baseline model qemu64, so a KVM whose custom-mode qemu64 is not usable
// (e.g. a paravirtual /dev/kvm that hides SSE3) cannot boot a normal guest,
// whatever else libvirt says. `reason` explains the verdict for status.
struct KvmVerdict {
  bool usable = false;
  std::string reason;
};
[[nodiscard]] KvmVerdict ParseKvmVerdict(const std::string& domain_capabilities_xml);

}  // namespace vmlab::reconcilers::infrastructure
