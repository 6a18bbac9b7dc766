#include "metrics/bootstrap_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>

namespace vmlab::metrics {
namespace {
// (role, phase) pairs that exist: control planes run base, endpoint and
// primary or secondary; workers base and worker.
constexpr std::pair<const char*, const char*> kPhases[] = {
    {"control-plane", "base"},       {"control-plane", "endpoint"},
    {"control-plane", "kubernetes"}, {"control-plane", "primary"},
    {"control-plane", "secondary"},  {"worker", "base"},
    {"worker", "kubernetes"},        {"worker", "worker"},
    {"golden-builder", "base"},      {"golden-builder", "kubernetes"},
    {"golden-builder", "golden"}};
// What served a node's downloads: its disk's golden image, the caches, or
// the upstreams directly; "unknown" for a node created before this controller
// started.
constexpr const char* kCaches[] = {"golden", "caches", "none"};
constexpr const char* kResults[] = {"accepted",  "unauthorized", "wrong_node",   "replay",
                                    "malformed", "oversized",    "rate_limited", "unknown_lab"};
}  // namespace

struct BootstrapMetrics::Metrics {
  prometheus::Family<prometheus::Histogram>* phases;
  prometheus::Family<prometheus::Counter>* reports;
  prometheus::Family<prometheus::Counter>* failures;
  std::mutex mutex;
  std::map<std::tuple<std::string, std::string, std::string>, prometheus::Histogram*> histograms;
  std::map<std::string, prometheus::Counter*, std::less<>> counters;
  std::map<std::pair<std::string, std::string>, prometheus::Counter*> failure_counters;

  prometheus::Counter& Failures(std::string_view role, std::string_view phase) {
    const auto key = std::pair{std::string(role), std::string(phase)};
    auto it = failure_counters.find(key);
    if (it == failure_counters.end()) {
      it = failure_counters
               .emplace(key, &failures->Add({{"role", key.first}, {"phase", key.second}}))
               .first;
    }
    return *it->second;
  }

  prometheus::Histogram& Phase(std::string_view role, std::string_view phase,
                               std::string_view cache) {
    const auto key = std::tuple{std::string(role), std::string(phase), std::string(cache)};
    auto it = histograms.find(key);
    if (it == histograms.end()) {
      // Phases take seconds (base without downloads) to tens of minutes (slow mirrors, TCG).
      auto& h = phases->Add(
          {{"role", std::get<0>(key)}, {"phase", std::get<1>(key)}, {"cache", std::get<2>(key)}},
          prometheus::Histogram::BucketBoundaries{1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800,
                                                  3600});
      it = histograms.emplace(key, &h).first;
    }
    return *it->second;
  }
};

BootstrapMetrics::BootstrapMetrics(Registry& registry) : m_(std::make_unique<Metrics>()) {
  auto& r = registry.prometheus();
  m_->phases = &prometheus::BuildHistogram()
                    .Name("vmlab_bootstrap_phase_duration_seconds")
                    .Help(
                        "Time nodes took for each bootstrap phase they finished, by role and "
                        "by what served their downloads (golden, caches, none)")
                    .Register(r);
  m_->reports = &prometheus::BuildCounter()
                     .Name("vmlab_progress_reports_total")
                     .Help("Node progress reports received, by verdict")
                     .Register(r);
  m_->failures = &prometheus::BuildCounter()
                      .Name("vmlab_bootstrap_phase_failures_total")
                      .Help("Bootstrap phases nodes reported failed (each failed attempt), by role")
                      .Register(r);
  for (const auto& [role, phase] : kPhases) {
    for (const char* cache : kCaches) m_->Phase(role, phase, cache);
    m_->Failures(role, phase);
  }
  for (const char* result : kResults)
    m_->counters[result] = &m_->reports->Add({{"result", result}});
}

BootstrapMetrics::~BootstrapMetrics() = default;

void BootstrapMetrics::ObservePhase(std::string_view role, std::string_view phase,
                                    std::string_view cache, double seconds) {
  std::lock_guard guard(m_->mutex);
  m_->Phase(role, phase, cache).Observe(seconds);
}

void BootstrapMetrics::CountPhaseFailure(std::string_view role, std::string_view phase) {
  std::lock_guard guard(m_->mutex);
  m_->Failures(role, phase).Increment();
}

void BootstrapMetrics::CountReport(std::string_view result) {
  std::lock_guard guard(m_->mutex);
  auto it = m_->counters.find(result);
  if (it == m_->counters.end()) {
    it = m_->counters
             .emplace(std::string(result), &m_->reports->Add({{"result", std::string(result)}}))
             .first;
  }
  it->second->Increment();
}

}  // namespace vmlab::metrics
