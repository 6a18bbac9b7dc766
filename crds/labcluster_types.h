// LabCluster v1alpha1: the typed form of a manifest, with defaults applied.
//
// Produced by ParseManifests (labcluster_parse.h) and consumed read-only by the
// controller and the reconcilers. Plain values: copyable, thread-compatible.
// Field names mirror the YAML (camelCase there, snake_case here).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crds/ipv4.h"

namespace vmlab::crds {

inline constexpr std::string_view kApiVersion = "vmlab.io/v1alpha1";
inline constexpr std::string_view kKind = "LabCluster";

enum class Cni { kCalico, kCilium, kBridge, kNone };
enum class DriftPolicy { kRemediate, kReport };
enum class DeletionPolicy { kDelete, kRetain };
enum class NodeRole { kControlPlane, kWorker };

[[nodiscard]] std::string_view ToString(Cni value);
[[nodiscard]] std::string_view ToString(DriftPolicy value);
[[nodiscard]] std::string_view ToString(DeletionPolicy value);
// "control-plane" or "worker", as in status.nodes[].role.
[[nodiscard]] std::string_view ToString(NodeRole value);

struct ObjectMeta {
  std::string name;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

struct KubernetesSpec {
  std::string version;  // MAJOR.MINOR.PATCH (validated: 1.20 or newer)
  Ipv4Cidr pod_cidr;
  Ipv4Cidr service_cidr;
  Cni cni = Cni::kCalico;
  // Where the CNI manifest comes from: an https URL or an absolute path on the
  // host (delivered to the primary in its seed). Empty: vmlab's pinned default.
  std::string cni_manifest;
};

struct NetworkSpec {
  Ipv4Cidr cidr;
  std::string domain;
};

struct Endpoint {
  std::string host;
  Ipv4Address vip;
  int port = 0;
};

struct ControlPlaneSpec {
  int replicas = 0;
  int cpus = 0;
  int memory_mib = 0;
  int disk_gib = 0;
  Endpoint endpoint;
};

struct WorkersSpec {
  int replicas = 0;
  int cpus = 0;
  int memory_mib = 0;
  int disk_gib = 0;
  int extra_disk_gib = 0;
};

struct ImageSpec {
  std::string path;
  // Direct kernel boot; all empty unless `kernel` is set.
  std::string kernel;
  std::string initrd;
  std::string cmdline;
};

struct CacheSpec {
  bool apt = true;
  bool images = true;
  // A host folder of `docker save` / OCI image archives served to the lab's
  // nodes and imported before kubeadm runs; empty: none.
  std::string image_archives;
  // Nodes boot from a shared base image with the download phases applied.
  bool golden_image = false;
};

struct LabClusterSpec {
  KubernetesSpec kubernetes;
  NetworkSpec network;
  ControlPlaneSpec control_plane;
  WorkersSpec workers;
  ImageSpec image;
  CacheSpec cache;
  DriftPolicy drift_policy = DriftPolicy::kRemediate;
  DeletionPolicy deletion_policy = DeletionPolicy::kDelete;
  std::vector<std::string> ssh_authorized_keys;
  // Add-on manifests applied in order after the CNI: https URLs or absolute host paths.
  std::vector<std::string> addons;
};

struct LabCluster {
  ObjectMeta metadata;
  LabClusterSpec spec;
};

// One planned node: its name (libvirt domain and hostname), role and address.
struct PlannedNode {
  std::string name;
  NodeRole role = NodeRole::kWorker;
  int index = 0;              // from 1 within its role
  std::uint64_t address = 0;  // may lie outside the network: see AddressPlanFits
};

// Defaults, from the seed lab's .env.example (DESIGN.md "Manifest").
namespace defaults {
inline constexpr std::string_view kPodCidr = "10.217.0.0/16";
inline constexpr std::string_view kServiceCidr = "10.96.0.0/12";
inline constexpr std::string_view kNetworkCidr = "172.42.42.0/24";
inline constexpr std::string_view kDomain = "lab.local";
inline constexpr int kControlPlaneReplicas = 1;
inline constexpr int kWorkerReplicas = 3;
inline constexpr int kCpus = 2;
inline constexpr int kMemoryMiB = 2048;
inline constexpr int kDiskGiB = 20;
inline constexpr int kExtraDiskGiB = 0;
inline constexpr int kEndpointPort = 16443;
inline constexpr std::string_view kImagePath =
    "/var/lib/vmlab/images/ubuntu-22.04-server-cloudimg-amd64.img";
}  // namespace defaults

// Address plan offsets from the network address (DESIGN.md "Names and contracts").
inline constexpr std::uint64_t kGatewayOffset = 1;
inline constexpr std::uint64_t kVipOffset = 10;
inline constexpr std::uint64_t kControlPlaneOffset = 10;  // control plane i at .10+i
inline constexpr std::uint64_t kWorkerOffset = 100;       // worker i at .100+i

// Every node of the lab, control planes first, in index order.
[[nodiscard]] std::vector<PlannedNode> PlanNodes(const LabCluster& lab);

// The MINOR of a validated spec.kubernetes.version (MAJOR.MINOR.PATCH); 0 when
// it has none.
[[nodiscard]] int KubernetesMinor(std::string_view version);

// cni: bridge gives every node slot a /24 of spec.kubernetes.podCIDR at the
// slot's host number in the lab network (lab address minus network address).
inline constexpr int kBridgeNodeSubnetPrefix = 24;
// The pod subnet of the node at lab address `address` under cni: bridge.
[[nodiscard]] Ipv4Cidr BridgePodSubnet(const LabCluster& lab, std::uint64_t address);
// Every address a node of the lab may ever have (control-plane slots
// 1..kMaxControlPlanes, worker slots that fit the network), for routes that
// still hold after a scale-up.
[[nodiscard]] std::vector<std::uint64_t> NodeSlotAddresses(const LabCluster& lab);

}  // namespace vmlab::crds
