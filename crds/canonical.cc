#include "crds/canonical.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdlib>

#include "crds/yaml_scalar.h"

namespace vmlab::crds {
namespace {

// A string written so that it reads back as the same string: plain when YAML
// reads it as a string anyway, double-quoted when it would read as a number,
// boolean or null ("123", "true", "1.5").
struct Text {
  std::string_view value;
};

YAML::Emitter& operator<<(YAML::Emitter& out, Text text) {
  if (ClassifyPlainScalar(text.value) != ScalarKind::kString) out << YAML::DoubleQuoted;
  return out << std::string(text.value);
}

void EmitSpec(YAML::Emitter& out, const LabClusterSpec& spec) {
  out << YAML::BeginMap;
  out << YAML::Key << "kubernetes" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "version" << YAML::Value << YAML::DoubleQuoted << spec.kubernetes.version;
  out << YAML::Key << "podCIDR" << YAML::Value << spec.kubernetes.pod_cidr.ToString();
  out << YAML::Key << "serviceCIDR" << YAML::Value << spec.kubernetes.service_cidr.ToString();
  out << YAML::Key << "cni" << YAML::Value << std::string(ToString(spec.kubernetes.cni));
  if (!spec.kubernetes.cni_manifest.empty()) {
    out << YAML::Key << "cniManifest" << YAML::Value << Text{spec.kubernetes.cni_manifest};
  }
  out << YAML::EndMap;

  out << YAML::Key << "network" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "cidr" << YAML::Value << spec.network.cidr.ToString();
  out << YAML::Key << "domain" << YAML::Value << Text{spec.network.domain};
  out << YAML::EndMap;

  const auto& cp = spec.control_plane;
  out << YAML::Key << "controlPlane" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "replicas" << YAML::Value << cp.replicas;
  out << YAML::Key << "cpus" << YAML::Value << cp.cpus;
  out << YAML::Key << "memoryMiB" << YAML::Value << cp.memory_mib;
  out << YAML::Key << "diskGiB" << YAML::Value << cp.disk_gib;
  out << YAML::Key << "endpoint" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "host" << YAML::Value << Text{cp.endpoint.host};
  out << YAML::Key << "vip" << YAML::Value << cp.endpoint.vip.ToString();
  out << YAML::Key << "port" << YAML::Value << cp.endpoint.port;
  out << YAML::EndMap << YAML::EndMap;

  const auto& workers = spec.workers;
  out << YAML::Key << "workers" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "replicas" << YAML::Value << workers.replicas;
  out << YAML::Key << "cpus" << YAML::Value << workers.cpus;
  out << YAML::Key << "memoryMiB" << YAML::Value << workers.memory_mib;
  out << YAML::Key << "diskGiB" << YAML::Value << workers.disk_gib;
  out << YAML::Key << "extraDiskGiB" << YAML::Value << workers.extra_disk_gib;
  out << YAML::EndMap;

  out << YAML::Key << "image" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "path" << YAML::Value << Text{spec.image.path};
  if (!spec.image.kernel.empty()) {
    out << YAML::Key << "kernel" << YAML::Value << Text{spec.image.kernel};
    if (!spec.image.initrd.empty())
      out << YAML::Key << "initrd" << YAML::Value << Text{spec.image.initrd};
    if (!spec.image.cmdline.empty()) {
      out << YAML::Key << "cmdline" << YAML::Value << YAML::DoubleQuoted << spec.image.cmdline;
    }
  }
  out << YAML::EndMap;

  out << YAML::Key << "cache" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "apt" << YAML::Value << spec.cache.apt;
  out << YAML::Key << "images" << YAML::Value << spec.cache.images;
  // Written only when set, so that specs written before these fields existed
  // keep their hash.
  if (!spec.cache.image_archives.empty()) {
    out << YAML::Key << "imageArchives" << YAML::Value << Text{spec.cache.image_archives};
  }
  if (spec.cache.golden_image) out << YAML::Key << "goldenImage" << YAML::Value << true;
  out << YAML::EndMap;

  out << YAML::Key << "drift" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "policy" << YAML::Value << std::string(ToString(spec.drift_policy));
  out << YAML::EndMap;
  out << YAML::Key << "deletionPolicy" << YAML::Value
      << std::string(ToString(spec.deletion_policy));

  if (!spec.addons.empty()) {
    out << YAML::Key << "addons" << YAML::Value << YAML::BeginSeq;
    for (const auto& addon : spec.addons) out << Text{addon};
    out << YAML::EndSeq;
  }
  out << YAML::Key << "ssh" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "authorizedKeys" << YAML::Value;
  if (spec.ssh_authorized_keys.empty()) out << YAML::Flow;
  out << YAML::BeginSeq;
  for (const auto& key : spec.ssh_authorized_keys) out << YAML::DoubleQuoted << key;
  out << YAML::EndSeq << YAML::EndMap;
  out << YAML::EndMap;
}

void EmitStringMap(YAML::Emitter& out, const char* key,
                   const std::map<std::string, std::string>& values) {
  if (values.empty()) return;
  out << YAML::Key << key << YAML::Value << YAML::BeginMap;
  for (const auto& [name, value] : values) {
    out << YAML::Key << YAML::DoubleQuoted << name << YAML::Value << YAML::DoubleQuoted << value;
  }
  out << YAML::EndMap;
}

}  // namespace

std::string CanonicalYaml(const LabCluster& lab) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "apiVersion" << YAML::Value << std::string(kApiVersion);
  out << YAML::Key << "kind" << YAML::Value << std::string(kKind);
  out << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << Text{lab.metadata.name};
  EmitStringMap(out, "labels", lab.metadata.labels);
  EmitStringMap(out, "annotations", lab.metadata.annotations);
  out << YAML::EndMap;
  out << YAML::Key << "spec" << YAML::Value;
  EmitSpec(out, lab.spec);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string SpecHash(const LabClusterSpec& spec) {
  YAML::Emitter out;
  EmitSpec(out, spec);
  return Sha256Hex(std::string_view(out.c_str(), out.size()));
}

std::string Sha256Hex(std::string_view text) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1) {
    std::abort();  // sha256 is always available in OpenSSL 3's default provider
  }
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

}  // namespace vmlab::crds
