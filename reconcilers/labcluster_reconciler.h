// LabClusterReconciler: converges one lab toward its manifest.
//
// In this build it validates and records only: it keeps metadata.generation
// in step with the spec, reports SpecValid and Deleting, plans the nodes
// (names, roles, addresses; domainState "missing"), records events on every
// transition, and says plainly in InfrastructureReady, ControlPlaneReady,
// WorkersReady and Ready that creating VMs is not implemented yet. A lab whose
// desired state is gone has its status removed.
// Thread-safe (one call per key at a time, as the Manager guarantees).
#pragma once

#include <string>

#include "controller/clock.h"
#include "controller/desired_state.h"
#include "controller/reconciler.h"
#include "controller/status_store.h"

namespace vmlab::metrics {
class LabMetrics;
}  // namespace vmlab::metrics

namespace vmlab::reconcilers {

class LabClusterReconciler final : public controller::Reconciler {
 public:
  // `metrics` may be null. All references must outlive the reconciler.
  LabClusterReconciler(const controller::DesiredState& desired, controller::StatusStore& store,
                       controller::Clock& clock, metrics::LabMetrics* metrics);

  [[nodiscard]] Result<controller::ReconcileResult> Reconcile(const std::string& name) override;

 private:
  const controller::DesiredState& desired_;
  controller::StatusStore& store_;
  controller::Clock& clock_;
  metrics::LabMetrics* const metrics_;
};

}  // namespace vmlab::reconcilers
