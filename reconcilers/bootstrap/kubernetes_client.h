// The Kubernetes API of a lab, used by the controller through the lab's
// endpoint with the admin client certificate, the server verified against
// the lab's CA (and its name or address against the certificate), with a
// timeout: node readiness, the steps of a drain (cordon, pods, evictions
// that respect PodDisruptionBudgets, Node deletion) and bootstrap tokens.
// Thread-safe: the Eviction version it discovers is kept under a lock.
// cpprestsdk and Boost.Asio stay in the .cc. An unreachable API is an error
// (kUnavailable), never a crash.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "crds/result.h"

namespace vmlab::reconcilers::bootstrap {

struct KubeNode {
  std::string name;
  bool ready = false;          // condition Ready is True
  bool unschedulable = false;  // cordoned
};

struct KubePod {
  std::string ns;  // namespace
  std::string name;
  bool daemon_set = false;   // owned by a DaemonSet: a drain leaves it
  bool mirror = false;       // a static pod's mirror: a drain leaves it
  bool terminating = false;  // deletionTimestamp set: on its way out
  bool finished = false;     // phase Succeeded or Failed
};

enum class EvictionOutcome {
  kEvicted,  // the API accepted the eviction
  kGone,     // the pod no longer exists
  kBlocked,  // HTTP 429: a PodDisruptionBudget does not allow it now
};

struct Eviction {
  EvictionOutcome outcome = EvictionOutcome::kEvicted;
  std::string message;  // the API's reason when blocked
};

// A bootstrap token as kube-system/bootstrap-token-<id> (the Secret kubeadm
// makes), usable by `kubeadm join` for authentication and discovery.
struct BootstrapTokenSecret {
  std::string token;  // <id>.<secret>
  std::chrono::system_clock::time_point expiration;
  std::string description;
};

class KubernetesClient {
 public:
  virtual ~KubernetesClient() = default;
  [[nodiscard]] virtual Result<std::vector<KubeNode>> ListNodes() = 0;
  // Cordons (true) or uncordons the Node (kNotFound when it does not exist).
  [[nodiscard]] virtual Status SetUnschedulable(const std::string& node, bool unschedulable) = 0;
  // The pods bound to `node`.
  [[nodiscard]] virtual Result<std::vector<KubePod>> ListPods(const std::string& node) = 0;
  // Asks the eviction API to evict `pod`: a policy/v1 Eviction where the
  // server serves it, else policy/v1beta1 (Kubernetes before 1.22), as the
  // server's discovery (GET /apis/policy, asked once per client) says.
  [[nodiscard]] virtual Result<Eviction> EvictPod(const KubePod& pod) = 0;
  // Deletes the Node object; one that does not exist counts as deleted.
  [[nodiscard]] virtual Status DeleteNode(const std::string& node) = 0;
  // Creates the token's Secret; one that exists already counts as created.
  [[nodiscard]] virtual Status CreateBootstrapToken(const BootstrapTokenSecret& token) = 0;
};

struct KubernetesAccess {
  std::string server;  // https://HOST:PORT
  std::string ca_pem;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::chrono::milliseconds timeout{5000};
};

// Access from a kubeconfig (the first cluster and user, with embedded *-data).
[[nodiscard]] Result<KubernetesAccess> AccessFromKubeconfig(const std::string& kubeconfig);

[[nodiscard]] std::unique_ptr<KubernetesClient> MakeKubernetesClient(KubernetesAccess access);

// The group versions ("policy/v1", ...) an APIGroup JSON document lists.
[[nodiscard]] Result<std::vector<std::string>> ParseApiGroupVersions(const std::string& json);
// The nodes of a NodeList JSON document.
[[nodiscard]] Result<std::vector<KubeNode>> ParseNodeList(const std::string& json);
// The pods of a PodList JSON document.
[[nodiscard]] Result<std::vector<KubePod>> ParsePodList(const std::string& json);
// The Secret (JSON) for a bootstrap token.
[[nodiscard]] Result<std::string> BootstrapTokenSecretJson(const BootstrapTokenSecret& token);

}  // namespace vmlab::reconcilers::bootstrap
