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
// tails) in conditions and events. With simulated guests, starts the
// simulator on every node that boots and takes a node whose phases are all
// done as Ready; otherwise the Kubernetes API is not read yet and a finished
// bootstrap leaves readiness Unknown. A lab whose desired state is gone is torn down (volumes
// and secrets kept under deletionPolicy Retain), then its status is removed. Thread-safe (one call
// per key at a time, as the Manager guarantees).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "controller/clock.h"
#include "controller/desired_state.h"
#include "controller/reconciler.h"
#include "controller/status_store.h"
#include "reconcilers/bootstrap/kubernetes_client.h"
#include "reconcilers/bootstrap/lab_secrets.h"
#include "reconcilers/bootstrap/node_config.h"
#include "reconcilers/bootstrap/progress.h"
#include "reconcilers/bootstrap/progress_listener.h"
#include "reconcilers/bootstrap/simulator.h"
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
  // Control planes the spec dropped whose etcd member is gone (their Node is
  // absent from the Kubernetes API): the only ones that may be removed.
  [[nodiscard]] std::set<std::string> RemovableControlPlanes(
      const crds::LabCluster& spec, const bootstrap::LabSecrets& secrets,
      const std::optional<controller::LabRecord>& before) const;
  // Node readiness from the lab's Kubernetes API (real guests, primary done).
  void ReadKubernetes(const crds::LabCluster& spec, const bootstrap::LabSecrets& secrets,
                      const std::map<std::string, bootstrap::NodeProgress>& progress,
                      std::map<std::string, bool>& ready, bool& read, std::string& error) const;
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
};

}  // namespace vmlab::reconcilers
