// Metrics of node bootstrap: vmlab_bootstrap_phase_duration_seconds{role,phase,cache}
// (a histogram of finished phases; cache: what served the node's downloads,
// golden | caches | none | unknown), vmlab_bootstrap_phase_failures_total{role,phase}
// (phases nodes reported failed) and vmlab_progress_reports_total{result}
// (node progress reports by verdict: accepted, unauthorized, wrong_node,
// replay, malformed, oversized, rate_limited, unknown_lab). Every known
// label combination exists from the start. Thread-safe.
#pragma once

#include <memory>
#include <string_view>

#include "metrics/registry.h"

namespace vmlab::metrics {

class BootstrapMetrics {
 public:
  explicit BootstrapMetrics(Registry& registry);
  ~BootstrapMetrics();
  BootstrapMetrics(const BootstrapMetrics&) = delete;
  BootstrapMetrics& operator=(const BootstrapMetrics&) = delete;

  void ObservePhase(std::string_view role, std::string_view phase, std::string_view cache,
                    double seconds);
  void CountPhaseFailure(std::string_view role, std::string_view phase);
  void CountReport(std::string_view result);

 private:
  struct Metrics;
  std::unique_ptr<Metrics> m_;
};

}  // namespace vmlab::metrics
