// Semantic rules of a LabCluster: value formats the schema cannot express and
// rules that span fields. Each Check* returns nullopt when `value` is fine, or
// a message that says what is wrong and what to write instead. Pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace vmlab::crds {

struct ParsedDocument;

namespace limits {
inline constexpr int kMaxNameLength = 20;
inline constexpr int kMaxControlPlanes = 7;
inline constexpr int kMaxWorkers = 150;
inline constexpr int kMinCpus = 1;
inline constexpr int kMaxCpus = 64;
inline constexpr int kMinMemoryMiB = 1024;
inline constexpr int kMaxMemoryMiB = 262144;
inline constexpr int kMinDiskGiB = 5;
inline constexpr int kMaxDiskGiB = 4096;
inline constexpr int kMaxExtraDiskGiB = 16384;
inline constexpr int kMinKubernetesMinor = 20;  // oldest minor vmlab renders artifacts for
// Oldest minor in the Kubernetes package repository (pkgs.k8s.io); older ones
// need a repository of their own (the controller's --kubernetes-packages).
inline constexpr int kMinPackagedKubernetesMinor = 24;
// kubeadm's preflight minimums on a control plane (NumCPU, Mem).
inline constexpr int kKubeadmControlPlaneCpus = 2;
inline constexpr int kKubeadmControlPlaneMemoryMiB = 1700;
inline constexpr int kApiServerPort = 6443;  // kube-apiserver's own port on control planes
}  // namespace limits

// metadata.name: a DNS-1123 label of at most 20 characters.
[[nodiscard]] std::optional<std::string> CheckName(std::string_view name);
// spec.kubernetes.version: a full release MAJOR.MINOR.PATCH, 1.20 or newer.
[[nodiscard]] std::optional<std::string> CheckKubernetesVersion(std::string_view version);
// spec.network.domain: a DNS-1123 subdomain.
[[nodiscard]] std::optional<std::string> CheckDomain(std::string_view domain);
// spec.controlPlane.endpoint.host: a DNS-1123 label.
[[nodiscard]] std::optional<std::string> CheckHostLabel(std::string_view host);
// spec.controlPlane.endpoint.port: haproxy binds it beside kube-apiserver.
[[nodiscard]] std::optional<std::string> CheckEndpointPort(int port);
// An absolute host path of safe characters, with no "." or ".." segment.
[[nodiscard]] std::optional<std::string> CheckHostPath(std::string_view path);
// A kernel command line of safe characters (no quotes or shell metacharacters).
[[nodiscard]] std::optional<std::string> CheckKernelCmdline(std::string_view cmdline);
// A Kubernetes manifest source: an https:// URL (no quotes, spaces or shell
// characters) or an absolute host path (CheckHostPath).
[[nodiscard]] std::optional<std::string> CheckManifestSource(std::string_view source);
// One OpenSSH authorized_keys line: "TYPE BASE64 [COMMENT]", blob matching TYPE.
[[nodiscard]] std::optional<std::string> CheckSshPublicKey(std::string_view key);

// Rules across fields of one typed document (address plan, CIDR overlaps,
// direct kernel boot, sizing warnings). Appends to `doc.diagnostics`.
void CheckCrossFieldRules(ParsedDocument& doc);

}  // namespace vmlab::crds
