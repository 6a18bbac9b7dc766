// What each node needs to become part of its lab's Kubernetes cluster, by
// role, computed before any VM boots (DESIGN.md "Bootstrap model"): the
// phase scripts (base on every node; endpoint on control planes; kubernetes,
// the pinned packages, on every node; then primary, secondary or worker), kubeadm configuration,
// haproxy and keepalived configuration, the shared CA material for control planes, and the
// #cloud-config that writes them and runs the phases. Pure functions of the spec, the lab's secrets
// and what the controller provides.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "crds/labcluster_types.h"
#include "reconcilers/bootstrap/lab_secrets.h"

namespace vmlab::reconcilers::bootstrap {

// Pinned versions of what nodes download (changed deliberately, with the docs).
inline constexpr const char* kCalicoManifest =
    "https://raw.githubusercontent.com/projectcalico/calico/v3.28.1/manifests/calico.yaml";
inline constexpr const char* kCiliumCliVersion = "v0.16.16";
inline constexpr const char* kCiliumVersion = "1.16.1";

// Where images come from: kubeadm's default from 1.25 on, named explicitly
// in the ClusterConfiguration of older versions (whose default, k8s.gcr.io, is frozen).
inline constexpr const char* kImageRepository = "registry.k8s.io";
inline constexpr int kRegistryK8sIoDefaultMinor = 25;

// cni: bridge: the node's CNI configuration, and the routes to the other node
// slots' pod subnets (a script the oneshot unit runs at every boot).
inline constexpr const char* kBridgeConflistPath = "/etc/cni/net.d/10-vmlab-bridge.conflist";
inline constexpr const char* kPodRoutesScriptPath = "/etc/vmlab/pod-routes.sh";
inline constexpr const char* kPodRoutesUnitPath = "/etc/systemd/system/vmlab-pod-routes.service";

// What the controller provides besides the spec.
struct NodeEnvironment {
  std::string apt_proxy;  // "http://HOST:PORT", empty for none
  // The proxy is apt-cacher-ng: https repositories go through it as
  // http://HTTPS///HOST/PATH (other proxies are reached with CONNECT).
  bool apt_https_remap = false;
  std::map<std::string, std::string> registry_mirrors;  // upstream host -> mirror URL
  // Contents of the host files the spec names (CNI manifest, add-ons), by path.
  std::map<std::string, std::string> host_files;
  // Where the lab's nodes report their phases (empty: console markers only).
  std::string progress_url;
  // The Kubernetes package repositories' base (--kubernetes-packages): the
  // repository of minor version M is BASE + "vM/deb/".
  std::string kubernetes_packages = "https://pkgs.k8s.io/core:/stable:/";
};

// base (all), endpoint (control planes), kubernetes (all: the pinned
// packages), then primary, secondary or worker. The golden image builder
// (index 0, see GoldenBuilderNode) runs base, kubernetes and golden (pulls the
// lab's images), then cleans itself for reuse and powers off.
enum class Phase { kBase, kEndpoint, kKubernetes, kPrimary, kSecondary, kWorker, kGolden };
[[nodiscard]] std::string_view ToString(Phase phase);

// The phases a node runs, in order.
[[nodiscard]] std::vector<Phase> PhasesFor(const crds::LabCluster& lab,
                                           const crds::PlannedNode& node);

// One file cloud-init writes on the node.
struct NodeFile {
  std::string path;
  std::string content;
  std::string permissions;  // "0644", "0600", "0755"
  bool secret = false;      // masked in `vmlab render` unless --show-secrets
};

// Every file `node` needs, the phase scripts included.
[[nodiscard]] std::vector<NodeFile> NodeFiles(const crds::LabCluster& lab,
                                              const crds::PlannedNode& node,
                                              const LabSecrets& secrets,
                                              const NodeEnvironment& env);

// Single artifacts (also inside NodeFiles), for validators and tests.
[[nodiscard]] std::string RenderHaproxyConfig(const crds::LabCluster& lab);
[[nodiscard]] std::string RenderKeepalivedConfig(const crds::LabCluster& lab,
                                                 const crds::PlannedNode& node,
                                                 const LabSecrets& secrets);
// A kubeadm patch giving static pod `component` lenient probes.
[[nodiscard]] std::string RenderProbePatch(std::string_view component);
[[nodiscard]] std::string RenderKubeadmConfig(const crds::LabCluster& lab,
                                              const crds::PlannedNode& node,
                                              const LabSecrets& secrets);
[[nodiscard]] std::string RenderPhaseScript(Phase phase, const crds::LabCluster& lab,
                                            const crds::PlannedNode& node,
                                            const NodeEnvironment& env);
// /etc/apt/apt.conf.d/90vmlab-proxy: apt through the lab's cache at `proxy`.
[[nodiscard]] std::string RenderAptProxyConfig(const std::string& proxy);
// The Kubernetes package repository of the lab's minor version, and the same
// as the nodes' apt reaches it (through apt-cacher-ng: http://HTTPS///HOST/PATH).
[[nodiscard]] std::string PackageRepository(const crds::LabCluster& lab,
                                            const NodeEnvironment& env);
[[nodiscard]] std::string AptRepository(const crds::LabCluster& lab, const NodeEnvironment& env);
// containerd's /etc/containerd/certs.d/UPSTREAM/hosts.toml: pull and resolve
// through `mirror` first, then the upstream itself (containerd's fallback).
[[nodiscard]] std::string RenderRegistryHosts(const std::string& upstream,
                                              const std::string& mirror);
// /etc/hosts lines for the endpoint and every node (a managed block).
[[nodiscard]] std::string RenderHostsBlock(const crds::LabCluster& lab);

// "HOST.DOMAIN:PORT", the control-plane endpoint nodes use.
[[nodiscard]] std::string EndpointAddress(const crds::LabCluster& lab);

// The kubeadm configuration API version for a Kubernetes version:
// kubeadm.k8s.io/v1beta2 before 1.22, v1beta3 from 1.22 to 1.30, v1beta4 from 1.31.
[[nodiscard]] std::string KubeadmApiVersion(const std::string& kubernetes_version);
// nodeRegistration.criSocket: containerd's socket as a path before 1.24, as a
// unix:// URL from 1.24.
[[nodiscard]] std::string CriSocket(const std::string& kubernetes_version);
// kubeadm preflight checks `node` is known to fail in the lab and that are
// safe to pass over, each by name (never "all"): NumCPU and Mem on control
// planes smaller than kubeadm's minimums, FileExisting-crictl on 1.20.
[[nodiscard]] std::vector<std::string> IgnoredPreflightErrors(const crds::LabCluster& lab,
                                                              const crds::PlannedNode& node);

// cni: bridge artifacts of `node` (also inside NodeFiles): its CNI
// configuration (JSON), the routes script and its systemd unit.
[[nodiscard]] std::string RenderBridgeConflist(const crds::LabCluster& lab,
                                               const crds::PlannedNode& node);
[[nodiscard]] std::string RenderPodRoutesScript(const crds::LabCluster& lab,
                                                const crds::PlannedNode& node);
[[nodiscard]] std::string RenderPodRoutesUnit();

// Console markers the phase runner writes (and the controller reads).
[[nodiscard]] std::string PhaseMarker(const std::string& node, Phase phase,
                                      const std::string& what);

}  // namespace vmlab::reconcilers::bootstrap
