// LabClusterReconciler: converges one lab toward its manifest.
//
// Keeps metadata.generation in step with the spec and reports SpecValid and
// Deleting; creates, repairs, scales and deletes the lab's libvirt network,
// volumes and domains through the InfrastructureReconciler, reporting node
// states, drift (Drifted, status.drift, events, metrics) and
// InfrastructureReady. Makes the lab's bootstrap secrets once (SecretStore)
// and renders each node's user-data into its seed; reads the nodes' phase
// progress (ProgressStore) into status.nodes[].bootstrapPhase,
// ControlPlaneReady, WorkersReady and Ready, with failures (and their log
// tails) in conditions and events. Once the primary control plane is done,
// works through the lab's Kubernetes API (the real one, or the simulator's
// with simulated guests): node readiness; workers the spec dropped are
// drained one at a time, highest index first (cordon, evictions that respect
// PodDisruptionBudgets, Node deleted) before their VMs go; control planes go
// only once their Node (and etcd member) is gone; a node recreated from a
// fresh disk has its stale Node deleted before it joins again; the bootstrap
// token is rotated when half its TTL has passed. A lab whose desired state is
// gone is torn down (volumes and secrets kept under deletionPolicy Retain),
// then its status is removed. Thread-safe (one call per key at a time, as the
// Manager guarantees).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "controller/clock.h"
#include "controller/desired_state.h"
#include "controller/reconciler.h"
#include "controller/status_store.h"
#include "reconcilers/bootstrap/etcd_client.h"
#include "reconcilers/bootstrap/kubernetes_client.h"
#include "reconcilers/bootstrap/lab_secrets.h"
#include "reconcilers/bootstrap/node_config.h"
#include "reconcilers/bootstrap/progress.h"
#include "reconcilers/bootstrap/progress_listener.h"
#include "reconcilers/bootstrap/simulator.h"
#include "reconcilers/cache/apt_cache.h"
#include "reconcilers/cache/golden_images.h"
#include "reconcilers/cache/image_archives.h"
#include "reconcilers/cache/registry_mirrors.h"
#include "reconcilers/infrastructure_reconciler.h"

namespace vmlab::metrics {
class LabMetrics;
}  // namespace vmlab::metrics

namespace vmlab::reconcilers {

// Node progress, the HTTP listeners nodes report to (on each lab's gateway,
// real hypervisors only; port 0: none), and with --simulate-guests the
// simulator. All optional.
struct BootstrapRuntime {
  bootstrap::ProgressStore* progress = nullptr;
  bootstrap::GuestSimulator* simulator = nullptr;
  bootstrap::ProgressListeners* listeners = nullptr;
  int progress_port = 0;
  // Opens the lab's Kubernetes API (real guests): node readiness once the
  // primary control plane has finished its phases.
  std::function<std::unique_ptr<bootstrap::KubernetesClient>(bootstrap::KubernetesAccess)>
      kubernetes;
  // Opens a lab's etcd (real guests): taking a control plane out.
  std::function<std::unique_ptr<bootstrap::EtcdClient>(bootstrap::EtcdAccess)> etcd;
  int etcd_port = 2379;  // etcd's client port on every control plane
  // A drain blocked (by a PodDisruptionBudget) this long is reported as
  // timed out (DrainTimedOut, a Warning event); it is still retried and the
  // VM kept.
  std::chrono::seconds drain_timeout{600};
  // The apt cache nodes use (real hypervisors; null: none).
  cache::AptCache* apt_cache = nullptr;
  // Reads spec.cache.imageArchives folders (null: archives are not served).
  cache::ArchiveIndex* archives = nullptr;
  // The registry mirrors nodes pull images through (real hypervisors; null: none).
  cache::RegistryMirrors* registry_mirrors = nullptr;
  // Golden base images for labs with spec.cache.goldenImage (real guests; null: none).
  cache::GoldenImages* golden = nullptr;
  // Managed caches are warmed with each lab's packages and images.
  bool warm_caches = true;
};

class LabClusterReconciler final : public controller::Reconciler {
 public:
  // `metrics` may be null. All references must outlive the reconciler.
  LabClusterReconciler(const controller::DesiredState& desired, controller::StatusStore& store,
                       InfrastructureReconciler& infrastructure, bootstrap::SecretStore& secrets,
                       bootstrap::NodeEnvironment environment, controller::Clock& clock,
                       metrics::LabMetrics* metrics, BootstrapRuntime runtime = {});

  [[nodiscard]] Result<controller::ReconcileResult> Reconcile(const std::string& name) override;

 private:
  [[nodiscard]] Result<controller::ReconcileResult> Delete(const std::string& name,
                                                           const controller::LabRecord& record);
  // What the Kubernetes API decided before the infrastructure converges.
  struct ScaleDown {
    // Control planes the spec dropped that may go: they never joined, or
    // their etcd member was removed and their Node deleted.
    std::set<std::string> removable_control_planes;
    std::set<std::string> held_workers;         // dropped workers kept while they drain
    std::map<std::string, std::string> phases;  // kept node -> its status.nodes bootstrapPhase
    std::string reason;                         // InfrastructureReady reason while workers are held
    std::string message;
    std::string cp_reason;  // ... while dropped control planes are kept
    std::string cp_message;
    std::vector<std::pair<std::string, std::string>> events;  // (reason, message), Normal
  };
  // The lab's Kubernetes API: the simulator's, or the real one through the
  // admin kubeconfig.
  [[nodiscard]] Result<std::unique_ptr<bootstrap::KubernetesClient>> OpenKubernetes(
      const std::string& name, const bootstrap::LabSecrets& secrets) const;
  // Takes control plane `cp` (address `cp_ip`) out of etcd: its member —
  // found by name, or by peer URL for one added but never started — is
  // removed if the members left keep a healthy quorum (and, with
  // `only_if_unhealthy`, only while the member does not answer: the stale
  // member of a node being recreated, never its new one). Succeeds when it
  // has no member (any more).
  [[nodiscard]] Status LeaveEtcd(const std::string& name, const crds::LabCluster& spec,
                                 const bootstrap::LabSecrets& secrets, const std::string& cp,
                                 const std::string& cp_ip, bool only_if_unhealthy, ScaleDown& out);
  // Before the infrastructure converges: token rotation, which dropped nodes
  // may go, and one drain step. `secrets` is updated by a rotation.
  [[nodiscard]] ScaleDown PrepareKubernetes(
      const std::string& name, const crds::LabCluster& spec, bootstrap::LabSecrets& secrets,
      bool primary_done, const std::optional<controller::LabRecord>& before,
      const std::map<std::string, bootstrap::NodeProgress>& progress);
  // Node readiness from the lab's Kubernetes API (primary done), and, for
  // nodes created anew, the removal of their stale etcd member and Node. `events`: (reason,
  // message).
  void ReadKubernetes(const std::string& name, const crds::LabCluster& spec,
                      const bootstrap::LabSecrets& secrets, bool primary_done,
                      const std::map<std::string, bootstrap::NodeProgress>& progress,
                      std::map<std::string, bool>& ready, bool& read, std::string& error,
                      std::vector<std::pair<std::string, std::string>>& events);
  // Tells the progress store (and the simulator) about the lab's nodes and
  // returns their progress.
  [[nodiscard]] std::map<std::string, bootstrap::NodeProgress> FollowProgress(
      const std::string& name, const crds::LabCluster& spec, const bootstrap::LabSecrets& secrets,
      const InfrastructureOutcome& outcome);

  const controller::DesiredState& desired_;
  controller::StatusStore& store_;
  InfrastructureReconciler& infrastructure_;
  bootstrap::SecretStore& secrets_;
  const bootstrap::NodeEnvironment environment_;
  controller::Clock& clock_;
  metrics::LabMetrics* const metrics_;
  const BootstrapRuntime runtime_;
  // What vmlab keeps about a lab's cluster between reconciles. Only that
  // lab's reconcile uses its entry (one at a time), so the mutex guards the
  // map alone and no API call happens under it.
  struct KubernetesState {
    std::map<std::string, controller::SteadyTime> drains;  // worker -> when vmlab cordoned it
    std::set<std::string> stale_nodes;    // created anew; their old Node may still be in the API
    bootstrap::CertAndKey etcd_identity;  // vmlab's etcd client certificate
    // node -> what serves its downloads (golden, caches, none), from its creation.
    std::map<std::string, std::string> node_caches;
    std::string builder_key;  // the golden image key the running builder was made for
  };
  [[nodiscard]] KubernetesState& StateOf(const std::string& lab);
  std::mutex kubernetes_mutex_;
  std::map<std::string, KubernetesState> kubernetes_state_;
};

}  // namespace vmlab::reconcilers
