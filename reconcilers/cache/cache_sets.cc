#include "reconcilers/cache/cache_sets.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <tuple>

#include "crds/canonical.h"
#include "reconcilers/bootstrap/node_config.h"

namespace vmlab::reconcilers::cache {
namespace {

struct Release {
  int minor;
  int patch_from;  // this row holds from this patch release on (until the next row)
  const char* etcd;
  const char* coredns;
};

// kubeadm's etcd and CoreDNS images by release (the values
// `kubeadm config images list` prints; they change at the patch releases
// listed). Extended deliberately, with docs/caches.md.
constexpr Release kReleases[] = {
    {24, 0, "3.5.3-0", "v1.8.6"},    {24, 8, "3.5.5-0", "v1.8.6"},
    {24, 9, "3.5.6-0", "v1.8.6"},    {25, 0, "3.5.4-0", "v1.9.3"},
    {25, 4, "3.5.5-0", "v1.9.3"},    {25, 5, "3.5.6-0", "v1.9.3"},
    {25, 15, "3.5.9-0", "v1.9.3"},   {26, 0, "3.5.6-0", "v1.9.3"},
    {26, 10, "3.5.9-0", "v1.9.3"},   {26, 13, "3.5.10-0", "v1.9.3"},
    {27, 0, "3.5.7-0", "v1.10.1"},   {27, 7, "3.5.9-0", "v1.10.1"},
    {27, 10, "3.5.10-0", "v1.10.1"}, {27, 12, "3.5.12-0", "v1.10.1"},
    {28, 0, "3.5.9-0", "v1.10.1"},   {28, 6, "3.5.10-0", "v1.10.1"},
    {28, 8, "3.5.12-0", "v1.10.1"},  {28, 14, "3.5.15-0", "v1.10.1"},
    {29, 0, "3.5.10-0", "v1.11.1"},  {29, 3, "3.5.12-0", "v1.11.1"},
    {29, 9, "3.5.15-0", "v1.11.1"},  {30, 0, "3.5.12-0", "v1.11.1"},
    {30, 5, "3.5.15-0", "v1.11.3"},  {31, 0, "3.5.15-0", "v1.11.1"},
    {31, 1, "3.5.15-0", "v1.11.3"},  {32, 0, "3.5.16-0", "v1.11.3"},
};
constexpr int kLastKnownMinor = 32;
constexpr std::string_view kPausePrefix = "registry.k8s.io/pause:";

// kubeadm's pause image by minor (constants.PauseVersion): from this minor on.
struct PauseRelease {
  int minor_from;
  const char* tag;
};
constexpr PauseRelease kPauseReleases[] = {{20, "3.2"}, {21, "3.4.1"}, {22, "3.5"}, {23, "3.6"},
                                           {24, "3.7"}, {25, "3.8"},   {26, "3.9"}, {31, "3.10"}};

// Images of the CNIs vmlab installs itself (pinned in node_config.h).
const std::vector<std::string>& CalicoImages() {
  static const std::vector<std::string> images = {"docker.io/calico/cni:v3.28.1",
                                                  "docker.io/calico/node:v3.28.1",
                                                  "docker.io/calico/kube-controllers:v3.28.1"};
  return images;
}
const std::vector<std::string>& CiliumImages() {
  static const std::vector<std::string> images = {
      fmt::format("quay.io/cilium/cilium:v{}", bootstrap::kCiliumVersion),
      fmt::format("quay.io/cilium/operator-generic:v{}", bootstrap::kCiliumVersion)};
  return images;
}

bool ParseVersion(const std::string& version, int& minor, int& patch) {
  int major = 0;
  const char* p = version.data();
  const char* end = version.data() + version.size();
  auto number = [&](int& out) {
    auto [next, ec] = std::from_chars(p, end, out);
    if (ec != std::errc{}) return false;
    p = next;
    return true;
  };
  if (!number(major) || p == end || *p++ != '.' || !number(minor) || p == end || *p++ != '.' ||
      !number(patch)) {
    return false;
  }
  return major == 1;
}

void CollectImages(const YAML::Node& node, std::set<std::string>& out) {
  if (node.IsMap()) {
    for (const auto& entry : node) {
      const std::string key = entry.first.as<std::string>("");
      if ((key == "containers" || key == "initContainers" || key == "ephemeralContainers") &&
          entry.second.IsSequence()) {
        for (const auto& container : entry.second) {
          if (container.IsMap() && container["image"] && container["image"].IsScalar()) {
            out.insert(NormalizeImage(container["image"].as<std::string>()));
          }
        }
      }
      CollectImages(entry.second, out);
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) CollectImages(item, out);
  }
}

}  // namespace

const std::vector<std::string>& BasePackages() {
  static const std::vector<std::string> packages = {"ca-certificates", "curl", "containerd",
                                                    "open-iscsi", "procps"};
  return packages;
}

const std::vector<std::string>& EndpointPackages() {
  static const std::vector<std::string> packages = {"haproxy", "keepalived"};
  return packages;
}

const std::vector<std::string>& KubernetesPackages() {
  static const std::vector<std::string> packages = {"kubelet", "kubeadm", "kubectl"};
  return packages;
}

std::vector<Package> PackageSet(const crds::LabCluster& lab, crds::NodeRole role) {
  std::vector<Package> set;
  for (const auto& name : BasePackages()) set.push_back({name, PackageSource::kDebian, ""});
  for (const auto& name : CniPackages(lab)) set.push_back({name, PackageSource::kDebian, ""});
  if (role == crds::NodeRole::kControlPlane) {
    for (const auto& name : EndpointPackages()) set.push_back({name, PackageSource::kDebian, ""});
  }
  for (const auto& name : KubernetesPackages()) {
    set.push_back({name, PackageSource::kKubernetes, lab.spec.kubernetes.version});
  }
  std::sort(set.begin(), set.end(), [](const Package& a, const Package& b) {
    return std::tie(a.source, a.name) < std::tie(b.source, b.name);
  });
  return set;
}

std::optional<KubeadmImages> KubeadmImagesFor(const std::string& version) {
  int minor = 0;
  int patch = 0;
  if (!ParseVersion(version, minor, patch) || minor > kLastKnownMinor) return std::nullopt;
  const Release* found = nullptr;
  for (const auto& release : kReleases) {
    if (release.minor == minor && release.patch_from <= patch) found = &release;
  }
  if (!found) return std::nullopt;
  return KubeadmImages{found->etcd, found->coredns,
                       PauseImage(version).substr(kPausePrefix.size())};
}

std::string PauseImage(const std::string& version) {
  const int minor = crds::KubernetesMinor(version);
  const char* tag = kPauseReleases[0].tag;
  for (const auto& release : kPauseReleases) {
    if (release.minor_from <= minor) tag = release.tag;
  }
  return std::string(kPausePrefix) + tag;
}

std::vector<std::string> CniPackages(const crds::LabCluster& lab) {
  if (lab.spec.kubernetes.cni == crds::Cni::kBridge) return {"containernetworking-plugins"};
  return {};
}

int GoldenDiskGiB(const crds::LabCluster& lab) {
  return lab.spec.workers.replicas > 0
             ? std::min(lab.spec.control_plane.disk_gib, lab.spec.workers.disk_gib)
             : lab.spec.control_plane.disk_gib;
}

std::string GoldenImageKey(const crds::LabCluster& lab,
                           const std::map<std::string, std::string>& host_files,
                           const std::string& base_image) {
  // Bumped when what vmlab bakes into a golden image changes.
  constexpr const char* kRecipe = "vmlab-golden-1";
  std::string text =
      fmt::format("recipe {}\nbase {}\ndisk {} GiB\nkubernetes {}\nruntime containerd\n", kRecipe,
                  base_image, GoldenDiskGiB(lab), lab.spec.kubernetes.version);
  std::set<std::string> packages;
  for (const auto role : {crds::NodeRole::kControlPlane, crds::NodeRole::kWorker}) {
    for (const auto& p : PackageSet(lab, role)) {
      packages.insert(
          fmt::format("{} {} {}", p.name, p.version,
                      p.source == PackageSource::kKubernetes ? "kubernetes" : "debian"));
    }
  }
  for (const auto& p : packages) text += "package " + p + "\n";
  for (const auto& i : LabImages(lab, host_files)) text += "image " + i + "\n";
  return crds::Sha256Hex(text);
}

std::string NormalizeImage(const std::string& reference) {
  std::string ref = reference;
  const auto slash = ref.find('/');
  const std::string first = slash == std::string::npos ? "" : ref.substr(0, slash);
  const bool has_registry =
      slash != std::string::npos && (first.find('.') != std::string::npos ||
                                     first.find(':') != std::string::npos || first == "localhost");
  if (!has_registry) {
    ref = (slash == std::string::npos ? "docker.io/library/" : "docker.io/") + ref;
  }
  const auto last_slash = ref.rfind('/');
  const auto name_part = ref.substr(last_slash + 1);
  if (name_part.find(':') == std::string::npos && ref.find('@') == std::string::npos) {
    ref += ":latest";
  }
  return ref;
}

std::string RegistryOf(const std::string& normalized) {
  return normalized.substr(0, normalized.find('/'));
}

Result<std::set<std::string>> ManifestImages(const std::string& yaml) {
  std::set<std::string> images;
  std::size_t index = 0;
  try {
    for (const auto& document : YAML::LoadAll(yaml)) {
      ++index;
      CollectImages(document, images);
    }
  } catch (const YAML::Exception& e) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("document {}: {}", index + 1, e.what()));
  }
  return images;
}

std::set<std::string> LabImages(const crds::LabCluster& lab,
                                const std::map<std::string, std::string>& host_files) {
  std::set<std::string> images;
  for (const auto role : {crds::NodeRole::kControlPlane, crds::NodeRole::kWorker}) {
    auto set = ImagesFor(lab, role, host_files);
    images.merge(set.images);
  }
  return images;
}

ImageSet ImagesFor(const crds::LabCluster& lab, crds::NodeRole role,
                   const std::map<std::string, std::string>& host_files) {
  ImageSet set;
  const std::string& version = lab.spec.kubernetes.version;
  set.images.insert(fmt::format("registry.k8s.io/kube-proxy:v{}", version));
  if (role == crds::NodeRole::kControlPlane) {
    for (const char* component : {"kube-apiserver", "kube-controller-manager", "kube-scheduler"}) {
      set.images.insert(fmt::format("registry.k8s.io/{}:v{}", component, version));
    }
  }
  set.images.insert(PauseImage(version));
  if (const auto kubeadm = KubeadmImagesFor(version)) {
    if (role == crds::NodeRole::kControlPlane) {
      set.images.insert(fmt::format("registry.k8s.io/etcd:{}", kubeadm->etcd));
      set.images.insert(fmt::format("registry.k8s.io/coredns/coredns:{}", kubeadm->coredns));
    }
  } else {
    set.notes.push_back(
        fmt::format("kubeadm's etcd and CoreDNS images for {} are not in vmlab's table; they are "
                    "cached when first pulled",
                    version));
  }
  // The CNI: a manifest from the host is read; vmlab's pinned ones are known.
  const auto& k8s = lab.spec.kubernetes;
  auto from_manifest = [&](const std::string& path, const char* what) {
    if (path.starts_with("https://")) {
      set.notes.push_back(
          fmt::format("the {} at {} is fetched by the node; its images are cached when first "
                      "pulled",
                      what, path));
      return;
    }
    const auto it = host_files.find(path);
    if (it == host_files.end()) {
      set.notes.push_back(fmt::format("the {} {} was not read", what, path));
      return;
    }
    auto images = ManifestImages(it->second);
    if (!images) {
      set.notes.push_back(fmt::format("the {} {}: {}", what, path, images.error().message));
      return;
    }
    set.images.insert(images->begin(), images->end());
  };
  if (!k8s.cni_manifest.empty()) {
    from_manifest(k8s.cni_manifest, "CNI manifest");
  } else if (k8s.cni == crds::Cni::kCalico) {
    set.images.insert(CalicoImages().begin(), CalicoImages().end());
  } else if (k8s.cni == crds::Cni::kCilium) {
    set.images.insert(CiliumImages().begin(), CiliumImages().end());
    set.notes.push_back(
        "cilium's Envoy image is chosen by the cilium CLI; it is cached when "
        "first pulled");
  }
  for (const auto& addon : lab.spec.addons) from_manifest(addon, "add-on");
  return set;
}

}  // namespace vmlab::reconcilers::cache
