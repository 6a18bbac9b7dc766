// vmlab's own metrics about manifests and labs: vmlab_manifests{state} and
// vmlab_labcluster_status_condition{name,type,status} (1 for a condition's
// current status, 0 for the other two, as kube-state-metrics does). Known
// label combinations are set to 0 at construction. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metrics/registry.h"

namespace vmlab::metrics {

class LabMetrics {
 public:
  explicit LabMetrics(Registry& registry);
  ~LabMetrics();
  LabMetrics(const LabMetrics&) = delete;
  LabMetrics& operator=(const LabMetrics&) = delete;

  // Manifest documents by state: "valid", "invalid", and labs whose manifest is
  // gone and that wait out the deletion grace period ("deleting").
  void SetManifests(std::size_t valid, std::size_t invalid, std::size_t deleting);
  // `status` is "True", "False" or "Unknown".
  void SetCondition(std::string_view lab, std::string_view type, std::string_view status);
  // vmlab_labcluster_nodes{name,role,state}: counts of `nodes` ((role, libvirt state)
  // pairs) by role and state; every other known combination is set to 0, and a state
  // outside running/shutoff/paused/crashed/missing counts as "other".
  void SetNodes(std::string_view lab,
                const std::vector<std::pair<std::string, std::string>>& nodes);
  // vmlab_drift_active{name,kind} (gauge) for every known kind: `active_kinds` are 1.
  void SetActiveDrift(std::string_view lab, const std::vector<std::string>& active_kinds);
  void CountDriftDetected(std::string_view lab, std::string_view kind);
  // `result`: "success" or "failure".
  void CountRemediation(std::string_view lab, std::string_view kind, std::string_view result);

  // Drops every series of `lab` (it no longer exists).
  void RemoveLab(std::string_view lab);

 private:
  struct Metrics;
  std::unique_ptr<Metrics> m_;
};

}  // namespace vmlab::metrics
