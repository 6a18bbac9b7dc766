#include "crds/labcluster_rules.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <vector>

#include "crds/labcluster_parse.h"
#include "crds/labcluster_types.h"

namespace vmlab::crds {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// Why `label` is not a DNS-1123 label, or nullopt.
std::optional<std::string> Dns1123LabelProblem(std::string_view label, std::size_t max_length) {
  if (label.empty()) return "is empty";
  if (label.size() > max_length) {
    return fmt::format("is {} characters long; at most {} are allowed", label.size(), max_length);
  }
  for (std::size_t i = 0; i < label.size(); ++i) {
    const char c = label[i];
    if (IsLowerAlnum(c) || (c == '-' && i != 0 && i + 1 != label.size())) continue;
    const auto byte = static_cast<unsigned char>(c);
    if (c == '-') return "starts or ends with \"-\"";
    if (c >= 'A' && c <= 'Z') return "has upper-case letters";
    if (byte < 0x20 || byte == 0x7f)
      return fmt::format("contains the control character 0x{:02x}", byte);
    if (c == ' ') return "contains a space";
    if (byte >= 0x80) return "contains a non-ASCII character";
    return fmt::format("contains \"{}\"", c);
  }
  return std::nullopt;
}

std::optional<int> ParseSmallNumber(std::string_view text) {
  if (text.empty() || text.size() > 4 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// First character of `text` outside `allowed` (plus letters and digits).
std::optional<std::string> UnsafeCharacter(std::string_view text, std::string_view allowed) {
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        allowed.find(c) != std::string_view::npos) {
      continue;
    }
    if (byte < 0x20 || byte == 0x7f) return fmt::format("the control character 0x{:02x}", byte);
    if (c == ' ') return std::string("a space");
    if (byte >= 0x80) return std::string("a non-ASCII character");
    return fmt::format("'{}'", c);
  }
  return std::nullopt;
}

std::string OffsetText(const Ipv4Cidr& cidr, std::uint64_t address) {
  if (address > 0xffffffffu || !cidr.Contains(Ipv4Address{static_cast<std::uint32_t>(address)})) {
    return fmt::format("offset .{} past {}", address - cidr.network.value, cidr.ToString());
  }
  return Ipv4Address{static_cast<std::uint32_t>(address)}.ToString();
}

}  // namespace

std::optional<std::string> CheckName(std::string_view name) {
  if (auto problem = Dns1123LabelProblem(name, limits::kMaxNameLength)) {
    return fmt::format(
        "\"{}\" is not a valid lab name: it {}; use a DNS-1123 label of at "
        "most {} characters (lower-case letters, digits and \"-\")",
        name.substr(0, 64), *problem, limits::kMaxNameLength);
  }
  return std::nullopt;
}

std::optional<std::string> CheckKubernetesVersion(std::string_view version) {
  const std::string hint = fmt::format(
      "\"{}\" is not a full Kubernetes release; write MAJOR.MINOR.PATCH, such as "
      "\"1.30.4\"",
      version.substr(0, 64));
  if (version.starts_with('v')) {
    return fmt::format("{} (without the leading \"v\")", hint);
  }
  std::vector<int> parts;
  std::string_view rest = version;
  while (true) {
    const auto dot = rest.find('.');
    auto number = ParseSmallNumber(rest.substr(0, dot));
    if (!number) return hint;
    parts.push_back(*number);
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  if (parts.size() != 3) return hint;
  if (parts[0] != 1 || parts[1] < limits::kMinKubernetesMinor) {
    return fmt::format(
        "Kubernetes {} is not supported: vmlab renders kubeadm configurations for 1.{} and "
        "newer; pick a newer release, such as \"1.{}.2\"",
        version, limits::kMinKubernetesMinor, limits::kMinKubernetesMinor);
  }
  return std::nullopt;
}

std::optional<std::string> CheckDomain(std::string_view domain) {
  if (domain.size() > 253) return "is longer than 253 characters";
  std::string_view rest = domain;
  while (true) {
    const auto dot = rest.find('.');
    if (auto problem = Dns1123LabelProblem(rest.substr(0, dot), 63)) {
      return fmt::format(
          "\"{}\" is not a DNS domain: a label {}; write labels of lower-case "
          "letters, digits and \"-\" separated by dots, such as lab.local",
          domain.substr(0, 64), *problem);
    }
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  return std::nullopt;
}

std::optional<std::string> CheckHostLabel(std::string_view host) {
  if (auto problem = Dns1123LabelProblem(host, 63)) {
    return fmt::format(
        "\"{}\" is not a host name: it {}; use a DNS-1123 label (lower-case "
        "letters, digits and \"-\") such as spkcluster",
        host.substr(0, 64), *problem);
  }
  return std::nullopt;
}

std::optional<std::string> CheckEndpointPort(int port) {
  if (port == limits::kApiServerPort) {
    return fmt::format(
        "port {} is kube-apiserver's own port on every control plane, where "
        "haproxy also listens; choose another, such as 16443",
        port);
  }
  return std::nullopt;
}

std::optional<std::string> CheckHostPath(std::string_view path) {
  if (!path.starts_with('/')) {
    return fmt::format("\"{}\" is not an absolute path; start it with /", path.substr(0, 80));
  }
  if (auto bad = UnsafeCharacter(path, "/._+-@,=:")) {
    return fmt::format("contains {}; paths may hold only letters, digits and / . _ + - @ , = :",
                       *bad);
  }
  if (path.size() > 1 && path.ends_with('/')) return "must name a file, not end with /";
  std::string_view rest = path.substr(1);
  while (!rest.empty()) {
    const auto slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    if (segment == "..") return "must not contain \"..\" segments; give the path without them";
    if (segment == "." || segment.empty()) return "must not contain \".\" or empty segments";
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return std::nullopt;
}

std::optional<std::string> CheckManifestSource(std::string_view source) {
  if (source.starts_with('/')) return CheckHostPath(source);
  if (!source.starts_with("https://")) {
    return fmt::format("\"{}\" is neither an https:// URL nor an absolute path",
                       source.substr(0, 80));
  }
  if (source.size() <= 8 || source[8] == '/') return "names no host after https://";
  if (auto bad = UnsafeCharacter(source, "/._-~:?=&%+@,")) {
    return fmt::format(
        "contains {}; a manifest URL here may hold only letters, digits and / . _ - ~ : ? = & % "
        "+ @ ,",
        *bad);
  }
  return std::nullopt;
}

std::optional<std::string> CheckKernelCmdline(std::string_view cmdline) {
  if (auto bad = UnsafeCharacter(cmdline, " /._+-@,=:")) {
    return fmt::format(
        "contains {}; a kernel command line here may hold only letters, digits, "
        "spaces and / . _ + - @ , = :",
        *bad);
  }
  return std::nullopt;
}

std::optional<std::string> CheckSshPublicKey(std::string_view key) {
  static constexpr std::string_view kTypes[] = {"ssh-ed25519",
                                                "ssh-rsa",
                                                "ecdsa-sha2-nistp256",
                                                "ecdsa-sha2-nistp384",
                                                "ecdsa-sha2-nistp521",
                                                "sk-ssh-ed25519@openssh.com",
                                                "sk-ecdsa-sha2-nistp256@openssh.com"};
  const auto space = key.find(' ');
  const std::string_view type = key.substr(0, space);
  if (std::find(std::begin(kTypes), std::end(kTypes), type) == std::end(kTypes)) {
    return fmt::format(
        "is not an OpenSSH public key: it must start with a key type such as "
        "ssh-ed25519 (paste the line of your id_*.pub file); got \"{}\"",
        type.substr(0, 40));
  }
  if (space == std::string_view::npos) return "has no key data after the key type";
  std::string_view rest = key.substr(space + 1);
  const auto end = rest.find(' ');
  const std::string_view blob = rest.substr(0, end);
  const std::string_view comment = end == std::string_view::npos ? "" : rest.substr(end + 1);
  if (auto bad = UnsafeCharacter(comment, " ._+-@,=:/()[]<>#!?%&*^~{}|")) {
    return fmt::format("has {} in its comment; remove it", *bad);
  }
  const bool base64 =
      !blob.empty() && blob.size() % 4 == 0 && std::all_of(blob.begin(), blob.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '+' || c == '/' || c == '=';
      });
  if (!base64) return "has key data that is not base64; copy the whole line again";
  std::vector<unsigned char> decoded(blob.size() / 4 * 3 + 1);
  const int length =
      EVP_DecodeBlock(decoded.data(), reinterpret_cast<const unsigned char*>(blob.data()),
                      static_cast<int>(blob.size()));
  if (length < 4) return "has key data that is not base64; copy the whole line again";
  const std::uint32_t name_length = (std::uint32_t{decoded[0]} << 24) |
                                    (std::uint32_t{decoded[1]} << 16) |
                                    (std::uint32_t{decoded[2]} << 8) | decoded[3];
  if (name_length != type.size() || 4 + name_length > static_cast<std::uint32_t>(length) ||
      !std::equal(type.begin(), type.end(), decoded.begin() + 4)) {
    return fmt::format(
        "has key data that does not hold a {} key; the line is damaged or its "
        "type was changed",
        type);
  }
  return std::nullopt;
}

void CheckCrossFieldRules(ParsedDocument& doc) {
  const LabCluster& lab = *doc.object;
  const LabClusterSpec& spec = lab.spec;
  const Ipv4Cidr& net = spec.network.cidr;
  const std::uint64_t size = net.Size();

  // Address plan: gateway .1, VIP .10, control plane i at .10+i, worker i at
  // .100+i; the last address is the broadcast address.
  constexpr std::uint64_t kMinPlanSize = 16;  // .1 .10 .11 fit a /28 with room to spare
  if (size < kMinPlanSize) {
    doc.AddError("spec.network.cidr",
                 fmt::format("{} is too small for the address plan (gateway .1, VIP .10, control "
                             "planes from .11); use a /28 or larger (/24 is usual)",
                             net.ToString()));
    return;
  }
  const std::uint64_t max_control_planes = size - 2 - kControlPlaneOffset;
  if (static_cast<std::uint64_t>(spec.control_plane.replicas) > max_control_planes) {
    doc.AddError("spec.controlPlane.replicas",
                 fmt::format("{} control planes do not fit {}: control plane i takes .{}+i, so "
                             "it has room for {}; use a larger spec.network.cidr",
                             spec.control_plane.replicas, net.ToString(), kControlPlaneOffset,
                             max_control_planes));
  }
  const std::uint64_t max_workers = size < kWorkerOffset + 2 ? 0 : size - 2 - kWorkerOffset;
  if (static_cast<std::uint64_t>(spec.workers.replicas) > max_workers) {
    doc.AddError("spec.workers.replicas",
                 fmt::format("{} workers do not fit {}: worker i takes .{}+i, so it has room for "
                             "{}; use a larger spec.network.cidr or fewer workers",
                             spec.workers.replicas, net.ToString(), kWorkerOffset, max_workers));
  }

  const Ipv4Address vip = spec.control_plane.endpoint.vip;
  const std::string vip_field = "spec.controlPlane.endpoint.vip";
  if (!net.Contains(vip)) {
    doc.AddError(vip_field, fmt::format("{} is outside spec.network.cidr {}; the VIP must be an "
                                        "address of the lab network, such as {}",
                                        vip.ToString(), net.ToString(),
                                        OffsetText(net, net.OffsetAddress(kVipOffset))));
  } else if (vip == net.network || vip == net.Broadcast()) {
    doc.AddError(vip_field,
                 fmt::format("{} is the {} address of {}; pick a host address such as {}",
                             vip.ToString(), vip == net.network ? "network" : "broadcast",
                             net.ToString(), OffsetText(net, net.OffsetAddress(kVipOffset))));
  } else if (vip.value == net.OffsetAddress(kGatewayOffset)) {
    doc.AddError(vip_field,
                 fmt::format("{} is the lab network's gateway (.1); pick another "
                             "address, such as {}",
                             vip.ToString(), OffsetText(net, net.OffsetAddress(kVipOffset))));
  } else {
    for (const PlannedNode& node : PlanNodes(lab)) {
      if (node.address == vip.value) {
        doc.AddError(vip_field,
                     fmt::format("{} is the address of node {}; pick an address no node uses "
                                 "(control planes take .{}+i, workers .{}+i)",
                                 vip.ToString(), node.name, kControlPlaneOffset, kWorkerOffset));
        break;
      }
    }
  }

  const Ipv4Cidr& pods = spec.kubernetes.pod_cidr;
  const Ipv4Cidr& services = spec.kubernetes.service_cidr;
  if (pods.Overlaps(net)) {
    doc.AddError("spec.kubernetes.podCIDR",
                 fmt::format("{} overlaps the node network spec.network.cidr {}; pick a "
                             "separate range",
                             pods.ToString(), net.ToString()));
  }
  if (services.Overlaps(net)) {
    doc.AddError("spec.kubernetes.serviceCIDR",
                 fmt::format("{} overlaps the node network spec.network.cidr {}; pick a "
                             "separate range",
                             services.ToString(), net.ToString()));
  }
  if (pods.Overlaps(services)) {
    doc.AddError("spec.kubernetes.serviceCIDR",
                 fmt::format("{} overlaps spec.kubernetes.podCIDR {}; pods and services need "
                             "separate ranges",
                             services.ToString(), pods.ToString()));
  }

  if ((spec.kubernetes.cni == Cni::kNone || spec.kubernetes.cni == Cni::kBridge) &&
      !spec.kubernetes.cni_manifest.empty()) {
    doc.AddError("spec.kubernetes.cniManifest",
                 fmt::format("is set but spec.kubernetes.cni is {}, which applies no manifest; "
                             "remove it or choose calico or cilium",
                             ToString(spec.kubernetes.cni)));
  }
  // cni: bridge gives each node slot the /24 at its host number: the pod
  // range must hold one per address of the lab network.
  const int widest_pods = net.prefix_length - (32 - kBridgeNodeSubnetPrefix);
  if (spec.kubernetes.cni == Cni::kBridge && pods.prefix_length > widest_pods) {
    doc.AddError(
        "spec.kubernetes.podCIDR",
        widest_pods < 1
            ? fmt::format("{} cannot hold a /{} per address of spec.network.cidr {} (cni: "
                          "bridge); use a /{} or smaller lab network",
                          pods.ToString(), kBridgeNodeSubnetPrefix, net.ToString(),
                          32 - kBridgeNodeSubnetPrefix + 1)
            : fmt::format(
                  "{} is too small for cni: bridge: every node gets a /{} at its host "
                  "number in spec.network.cidr {}, so it needs {} of them; use a /{} "
                  "or larger, such as {}/{}",
                  pods.ToString(), kBridgeNodeSubnetPrefix, net.ToString(), net.Size(), widest_pods,
                  Ipv4Address{pods.network.value & Ipv4Cidr{pods.network, widest_pods}.Mask()}
                      .ToString(),
                  widest_pods));
  }
  if (!CheckKubernetesVersion(spec.kubernetes.version) &&
      KubernetesMinor(spec.kubernetes.version) < limits::kMinPackagedKubernetesMinor) {
    doc.AddWarning(
        "spec.kubernetes.version",
        fmt::format("the Kubernetes package repository (pkgs.k8s.io) serves 1.{} and newer; "
                    "nodes need a repository with {} (controller flag --kubernetes-packages)",
                    limits::kMinPackagedKubernetesMinor, spec.kubernetes.version));
  }
  if (spec.image.kernel.empty()) {
    if (!spec.image.initrd.empty()) {
      doc.AddError("spec.image.initrd", "is set without spec.image.kernel; set the kernel too");
    }
    if (!spec.image.cmdline.empty()) {
      doc.AddError("spec.image.cmdline", "is set without spec.image.kernel; set the kernel too");
    }
  }

  const int control_planes = spec.control_plane.replicas;
  if (control_planes % 2 == 0) {
    doc.AddWarning("spec.controlPlane.replicas",
                   fmt::format("{} control planes tolerate as few failures as {}: etcd needs a "
                               "majority; an odd count (1, 3, 5) is usual",
                               control_planes, control_planes - 1));
  }
  if (spec.control_plane.cpus < limits::kKubeadmControlPlaneCpus) {
    doc.AddWarning("spec.controlPlane.cpus",
                   fmt::format("kubeadm's preflight checks want at least {} CPUs on a control "
                               "plane (vmlab tells kubeadm to ignore NumCPU)",
                               limits::kKubeadmControlPlaneCpus));
  }
  if (spec.control_plane.memory_mib < limits::kKubeadmControlPlaneMemoryMiB) {
    doc.AddWarning("spec.controlPlane.memoryMiB",
                   fmt::format("kubeadm's preflight checks want at least {} MiB on a control "
                               "plane (vmlab tells kubeadm to ignore Mem)",
                               limits::kKubeadmControlPlaneMemoryMiB));
  }
}

void ValidateManifestSet(std::span<ParsedDocument> documents) {
  auto where = [](const ParsedDocument& doc, std::string_view field) {
    const SourcePos pos = doc.PositionOf(field);
    return fmt::format("{}:{}:{}", doc.file, pos.line, pos.column);
  };
  for (std::size_t i = 0; i < documents.size(); ++i) {
    ParsedDocument& doc = documents[i];
    if (doc.name.empty()) continue;
    std::vector<std::string> others;
    for (std::size_t j = 0; j < documents.size(); ++j) {
      if (j != i && documents[j].name == doc.name) {
        others.push_back(where(documents[j], "metadata.name"));
      }
    }
    if (!others.empty()) {
      doc.AddError("metadata.name",
                   fmt::format("LabCluster \"{}\" is also defined at {}; names must be unique: "
                               "rename or remove one",
                               doc.name, fmt::join(others, ", ")));
    }
  }
  // Lab networks must not overlap: their bridges, DHCP and DNS would collide,
  // and so would every VIP and node address inside them.
  for (std::size_t i = 0; i < documents.size(); ++i) {
    ParsedDocument& doc = documents[i];
    if (!doc.object) continue;
    for (std::size_t j = 0; j < documents.size(); ++j) {
      const ParsedDocument& other = documents[j];
      if (j == i || !other.object || other.name == doc.name) continue;
      const Ipv4Cidr& mine = doc.object->spec.network.cidr;
      const Ipv4Cidr& theirs = other.object->spec.network.cidr;
      if (mine.Overlaps(theirs)) {
        const bool defaulted = !doc.fields.contains("spec.network.cidr");
        doc.AddError("spec.network.cidr",
                     fmt::format("{}{} overlaps the network {} of LabCluster \"{}\" ({}); give "
                                 "each lab its own range",
                                 mine.ToString(), defaulted ? " (the default)" : "",
                                 theirs.ToString(), other.name, where(other, "spec.network.cidr")));
      }
    }
  }
  for (ParsedDocument& doc : documents) SortDiagnostics(doc);
}

}  // namespace vmlab::crds
