#include "metrics/lab_metrics.h"

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <array>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace vmlab::metrics {
namespace {
constexpr const char* kStatuses[] = {"True", "False", "Unknown"};
}  // namespace

struct LabMetrics::Metrics {
  prometheus::Gauge* valid;
  prometheus::Gauge* invalid;
  prometheus::Gauge* deleting;
  prometheus::Family<prometheus::Gauge>* conditions;
  std::mutex mutex;
  // (lab, type) -> the three series of that condition, by status.
  std::map<std::pair<std::string, std::string>, std::array<prometheus::Gauge*, 3>> series;
};

LabMetrics::LabMetrics(Registry& registry) : m_(std::make_unique<Metrics>()) {
  auto& r = registry.prometheus();
  auto& manifests = prometheus::BuildGauge()
                        .Name("vmlab_manifests")
                        .Help("LabCluster manifest documents in the watch folder, by state")
                        .Register(r);
  m_->valid = &manifests.Add({{"state", "valid"}});
  m_->invalid = &manifests.Add({{"state", "invalid"}});
  m_->deleting = &manifests.Add({{"state", "deleting"}});
  m_->conditions = &prometheus::BuildGauge()
                        .Name("vmlab_labcluster_status_condition")
                        .Help("The current status of each LabCluster condition: 1 for the "
                              "status it has, 0 for the others")
                        .Register(r);
}

LabMetrics::~LabMetrics() = default;

void LabMetrics::SetManifests(std::size_t valid, std::size_t invalid, std::size_t deleting) {
  m_->valid->Set(static_cast<double>(valid));
  m_->invalid->Set(static_cast<double>(invalid));
  m_->deleting->Set(static_cast<double>(deleting));
}

void LabMetrics::SetCondition(std::string_view lab, std::string_view type,
                              std::string_view status) {
  std::lock_guard guard(m_->mutex);
  auto key = std::pair{std::string(lab), std::string(type)};
  auto it = m_->series.find(key);
  if (it == m_->series.end()) {
    std::array<prometheus::Gauge*, 3> gauges{};
    for (std::size_t i = 0; i < 3; ++i) {
      gauges[i] = &m_->conditions->Add(
          {{"name", key.first}, {"type", key.second}, {"status", kStatuses[i]}});
    }
    it = m_->series.emplace(std::move(key), gauges).first;
  }
  for (std::size_t i = 0; i < 3; ++i) it->second[i]->Set(status == kStatuses[i] ? 1 : 0);
}

void LabMetrics::RemoveLab(std::string_view lab) {
  std::lock_guard guard(m_->mutex);
  for (auto it = m_->series.begin(); it != m_->series.end();) {
    if (it->first.first != lab) {
      ++it;
      continue;
    }
    for (prometheus::Gauge* gauge : it->second) m_->conditions->Remove(gauge);
    it = m_->series.erase(it);
  }
}

}  // namespace vmlab::metrics
