// vmlab's own metrics about manifests and labs: vmlab_manifests{state} and
// vmlab_labcluster_status_condition{name,type,status} (1 for a condition's
// current status, 0 for the other two, as kube-state-metrics does). Known
// label combinations are set to 0 at construction. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

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
  // Drops every series of `lab` (it no longer exists).
  void RemoveLab(std::string_view lab);

 private:
  struct Metrics;
  std::unique_ptr<Metrics> m_;
};

}  // namespace vmlab::metrics
