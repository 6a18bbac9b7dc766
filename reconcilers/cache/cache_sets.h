// What a lab's nodes download, derived from its spec alone, so that caches
// can be warmed while the VMs are created and golden base images keyed by
// it: the Debian and Kubernetes packages each role installs (the same lists
// the phase scripts install from, so they cannot disagree) and the container
// images each role pulls (kubeadm's images for the Kubernetes version, the
// CNI's, and every image named in the CNI and add-on manifests the spec
// gives as host files). Pure functions.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "crds/labcluster_types.h"
#include "crds/result.h"

namespace vmlab::reconcilers::cache {

enum class PackageSource { kDebian, kKubernetes };

struct Package {
  std::string name;
  PackageSource source = PackageSource::kDebian;
  std::string version;  // kubelet/kubeadm/kubectl: the Kubernetes version (any "-N.M" revision)
  friend auto operator<=>(const Package&, const Package&) = default;
};

// The phases' package lists (node_config.cc renders its scripts from these).
[[nodiscard]] const std::vector<std::string>& BasePackages();      // every node
[[nodiscard]] const std::vector<std::string>& EndpointPackages();  // control planes
[[nodiscard]] const std::vector<std::string>& KubernetesPackages();

// Every package a node of `role` installs: Debian's, then the Kubernetes
// repository's, each by name.
[[nodiscard]] std::vector<Package> PackageSet(const crds::LabCluster& lab, crds::NodeRole role);

// kubeadm's images for a Kubernetes version (what `kubeadm config images
// list` prints for it), from a table of the releases vmlab knows; nullopt for
// a version past the table (those images are cached on first pull instead).
struct KubeadmImages {
  std::string etcd;
  std::string coredns;
  std::string pause;
};
[[nodiscard]] std::optional<KubeadmImages> KubeadmImagesFor(const std::string& version);
// The sandbox image kubeadm of `version`'s minor expects
// (registry.k8s.io/pause:TAG); the newest known one past vmlab's table.
[[nodiscard]] std::string PauseImage(const std::string& version);
// Debian packages the lab's CNI needs on every node (cni: bridge: the
// containernetworking-plugins), besides BasePackages.
[[nodiscard]] std::vector<std::string> CniPackages(const crds::LabCluster& lab);

struct ImageSet {
  std::set<std::string> images;    // fully qualified references (registry/repository:tag)
  std::vector<std::string> notes;  // what could not be derived, for CacheReady
};

// Every image a node of `role` pulls. `host_files`: contents of the spec's
// host-file manifests by path (the CNI manifest, add-ons).
[[nodiscard]] ImageSet ImagesFor(const crds::LabCluster& lab, crds::NodeRole role,
                                 const std::map<std::string, std::string>& host_files);

// Every image any node of `lab` pulls (both roles' ImagesFor).
[[nodiscard]] std::set<std::string> LabImages(const crds::LabCluster& lab,
                                              const std::map<std::string, std::string>& host_files);

// The images named in a multi-document Kubernetes manifest (containers,
// initContainers and ephemeralContainers of any workload), normalised;
// errors name the document.
[[nodiscard]] Result<std::set<std::string>> ManifestImages(const std::string& yaml);

// The key of a golden base image for `lab` (sha256 hex): everything that
// goes into one — the base image (`base_image`: what identifies its bytes,
// e.g. path, size and modification time), vmlab's recipe version, the
// Kubernetes version, the container runtime, the package and image sets of
// every role (host-file manifests included), and the disk size it is built
// at (GoldenDiskGiB: the image's filesystem grows to it, so no node's disk
// may be smaller) — and nothing else, so labs that differ only in name,
// network, CPUs, memory or counts share one.
// The disk size a golden image for `lab` is built at: its smallest node disk.
[[nodiscard]] int GoldenDiskGiB(const crds::LabCluster& lab);
[[nodiscard]] std::string GoldenImageKey(const crds::LabCluster& lab,
                                         const std::map<std::string, std::string>& host_files,
                                         const std::string& base_image);

// A reference as containerd names it: docker.io/library/ for bare names,
// docker.io/ for user/name, :latest when no tag or digest.
[[nodiscard]] std::string NormalizeImage(const std::string& reference);
// The registry host of a normalised reference.
[[nodiscard]] std::string RegistryOf(const std::string& normalized);

}  // namespace vmlab::reconcilers::cache
