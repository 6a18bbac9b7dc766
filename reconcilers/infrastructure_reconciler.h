// InfrastructureReconciler: observe -> plan -> act for one lab's libvirt
// objects. Observes only what the lab owns, asks the pure planner what to do,
// runs lab-wide actions first, then each node's actions with bounded
// parallelism (nodes are created side by side, not one after another), then
// the teardown of lab-wide objects, and reports node states and drift.
// Thread-safe for different labs.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "controller/status_store.h"
#include "crds/labcluster_types.h"
#include "crds/result.h"
#include "reconcilers/infrastructure/hypervisor.h"
#include "reconcilers/infrastructure/planner.h"

namespace vmlab::reconcilers {

// spec.cache.goldenImage, as the lab reconciler decided it (see planner.h Desired).
struct GoldenOptions {
  std::string root_backing;
  bool hold_new_nodes = false;
  bool builder = false;
};

struct InfrastructureOutcome {
  std::vector<controller::NodeStatus> nodes;  // every planned node, with its domain state
  std::vector<infrastructure::DriftItem> drift;
  std::vector<std::string> failures;  // one line per failed action
  std::vector<std::string> created;   // domains defined anew
  std::vector<std::string> deleted;   // domains removed
  std::vector<std::string> restarted;
  std::vector<std::string> refused;  // control planes the spec dropped, kept (etcd member present)
  std::vector<std::string> held;     // workers the spec dropped, kept while they drain
  std::string preflight_error;       // set when creation was refused up front; nothing was done
  bool network_active = false;
  std::string builder_state;  // the golden image builder's domain state, "missing" when none
  bool converged = false;     // network active, every planned node running, nothing failed
  bool nothing_left = false;  // (deletion) no domain, volume or network of the lab remains
};

// A node's cloud-init user-data, for its seed.
using UserDataFn = std::function<Result<std::string>(const crds::PlannedNode& node)>;

class InfrastructureReconciler {
 public:
  InfrastructureReconciler(infrastructure::Hypervisor& hypervisor, std::string state_dir,
                           int parallelism = 8);

  // `spec` null: tear the lab down. `known_nodes`: nodes created before
  // (status). `user_data` renders a node's user-data when its seed is made
  // (may be empty for a teardown).
  [[nodiscard]] Result<InfrastructureOutcome> Converge(
      const std::string& lab, const crds::LabCluster* spec, const std::string& spec_hash,
      bool retain_volumes, const std::set<std::string>& known_nodes,
      const UserDataFn& user_data = {}, const std::set<std::string>& removable_control_planes = {},
      const std::set<std::string>& held_workers = {}, const GoldenOptions& golden = {});
  // Domain type for vmlab's domains: "kvm" only when the host can really run
  // it (libvirt's KVM domain capabilities can run the baseline CPU), else
  // "qemu" (TCG); `reason` says why, for status. Detected once per process
  // (again after a failure to ask libvirt).
  struct DomainTypeChoice {
    std::string type;
    std::string reason;
  };
  [[nodiscard]] DomainTypeChoice DomainType();
  [[nodiscard]] std::string Driver() const { return hypervisor_.Driver(); }
  [[nodiscard]] const std::string& StateDir() const { return state_dir_; }

 private:
  [[nodiscard]] Result<infrastructure::Observed> Observe(const std::string& lab, bool pool_needed);
  [[nodiscard]] Status Run(const infrastructure::Action& action, const crds::LabCluster* spec,
                           const UserDataFn& user_data);
  // Builds `node`'s NoCloud seed image and uploads it as `volume`.
  [[nodiscard]] Status CreateSeed(const crds::LabCluster& spec, const std::string& node,
                                  const std::string& volume, const UserDataFn& user_data);

  infrastructure::Hypervisor& hypervisor_;
  const std::string state_dir_;
  const int parallelism_;
  std::mutex domain_type_mutex_;
  std::optional<DomainTypeChoice> domain_type_;
  // Domains stopped to be restarted and not started again yet (libvirt went
  // away in between): started on the next pass, not taken for drift.
  std::mutex restarting_mutex_;
  std::set<std::string> restarting_;
};

}  // namespace vmlab::reconcilers
