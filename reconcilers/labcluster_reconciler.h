// LabClusterReconciler: converges one lab toward its manifest.
//
// Keeps metadata.generation in step with the spec and reports SpecValid and
// Deleting; creates, repairs, scales and deletes the lab's libvirt network,
// volumes and domains through the InfrastructureReconciler, reporting node
// states, drift (Drifted, status.drift, events, metrics) and
// InfrastructureReady. Makes the lab's bootstrap secrets once (SecretStore)
// and renders each node's user-data into its seed; node progress and
// Kubernetes health are not observed yet, and ControlPlaneReady, WorkersReady
// and Ready say so. A lab whose desired state is gone is torn down (volumes
// and secrets kept under deletionPolicy Retain), then its status is removed. Thread-safe (one call per key at a time, as the Manager
// guarantees).
#pragma once

#include <string>

#include "controller/clock.h"
#include "controller/desired_state.h"
#include "controller/reconciler.h"
#include "controller/status_store.h"
#include "reconcilers/bootstrap/lab_secrets.h"
#include "reconcilers/bootstrap/node_config.h"
#include "reconcilers/infrastructure_reconciler.h"

namespace vmlab::metrics {
class LabMetrics;
}  // namespace vmlab::metrics

namespace vmlab::reconcilers {

class LabClusterReconciler final : public controller::Reconciler {
 public:
  // `metrics` may be null. All references must outlive the reconciler.
  LabClusterReconciler(const controller::DesiredState& desired, controller::StatusStore& store,
                       InfrastructureReconciler& infrastructure,
                       bootstrap::SecretStore& secrets, bootstrap::NodeEnvironment environment,
                       controller::Clock& clock, metrics::LabMetrics* metrics);

  [[nodiscard]] Result<controller::ReconcileResult> Reconcile(const std::string& name) override;

 private:
  [[nodiscard]] Result<controller::ReconcileResult> Delete(const std::string& name,
                                                           const controller::LabRecord& record);

  const controller::DesiredState& desired_;
  controller::StatusStore& store_;
  InfrastructureReconciler& infrastructure_;
  bootstrap::SecretStore& secrets_;
  const bootstrap::NodeEnvironment environment_;
  controller::Clock& clock_;
  metrics::LabMetrics* const metrics_;
};

}  // namespace vmlab::reconcilers
