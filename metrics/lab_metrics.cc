#include "metrics/lab_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <array>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>

namespace vmlab::metrics {
namespace {
constexpr const char* kStatuses[] = {"True", "False", "Unknown"};
constexpr const char* kDriftKinds[] = {"DomainMissing",    "DomainStopped",  "DomainCrashed",
                                       "ResourceMismatch", "NetworkMissing", "NetworkInactive",
                                       "VolumeMissing",    "OrphanDomain"};
constexpr const char* kRoles[] = {"control-plane", "worker"};
constexpr const char* kNodeStates[] = {"running", "shutoff", "paused",
                                       "crashed", "missing", "other"};
}  // namespace

struct LabMetrics::Metrics {
  prometheus::Gauge* valid;
  prometheus::Gauge* invalid;
  prometheus::Gauge* deleting;
  prometheus::Family<prometheus::Gauge>* conditions;
  std::mutex mutex;
  // (lab, type) -> the three series of that condition, by status.
  std::map<std::pair<std::string, std::string>, std::array<prometheus::Gauge*, 3>> series;
  prometheus::Family<prometheus::Gauge>* nodes;
  prometheus::Family<prometheus::Gauge>* drift_active;
  prometheus::Family<prometheus::Counter>* drift_detected;
  prometheus::Family<prometheus::Counter>* remediations;
  std::map<std::string, std::vector<prometheus::Gauge*>, std::less<>> lab_gauges;
  std::map<std::string, std::vector<prometheus::Counter*>, std::less<>> lab_counters;
  std::set<std::string, std::less<>> initialised;

  // Sets every known combination of `lab` to 0 the first time it is seen.
  void Initialise(std::string_view lab) {
    if (initialised.contains(lab)) return;
    const std::string name(lab);
    initialised.insert(name);
    auto& gauges = lab_gauges[name];
    auto& counters = lab_counters[name];
    for (const char* role : kRoles) {
      for (const char* state : kNodeStates) {
        gauges.push_back(&nodes->Add({{"name", name}, {"role", role}, {"state", state}}));
      }
    }
    for (const char* kind : kDriftKinds) {
      gauges.push_back(&drift_active->Add({{"name", name}, {"kind", kind}}));
      counters.push_back(&drift_detected->Add({{"name", name}, {"kind", kind}}));
      for (const char* result : {"success", "failure"}) {
        counters.push_back(
            &remediations->Add({{"name", name}, {"kind", kind}, {"result", result}}));
      }
    }
  }
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
  m_->nodes = &prometheus::BuildGauge()
                   .Name("vmlab_labcluster_nodes")
                   .Help("Nodes of each lab by role and libvirt domain state")
                   .Register(r);
  m_->drift_active = &prometheus::BuildGauge()
                          .Name("vmlab_drift_active")
                          .Help("1 while drift of this kind is present in the lab")
                          .Register(r);
  m_->drift_detected = &prometheus::BuildCounter()
                            .Name("vmlab_drift_detected_total")
                            .Help("Drift found, by lab and kind")
                            .Register(r);
  m_->remediations = &prometheus::BuildCounter()
                          .Name("vmlab_drift_remediations_total")
                          .Help("Drift repairs attempted, by lab, kind and result")
                          .Register(r);
  m_->conditions = &prometheus::BuildGauge()
                        .Name("vmlab_labcluster_status_condition")
                        .Help(
                            "The current status of each LabCluster condition: 1 for the "
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

void LabMetrics::SetNodes(std::string_view lab,
                          const std::vector<std::pair<std::string, std::string>>& nodes) {
  std::lock_guard guard(m_->mutex);
  m_->Initialise(lab);
  for (const char* role : kRoles) {
    for (const char* state : kNodeStates) {
      const auto count = std::count_if(nodes.begin(), nodes.end(), [&](const auto& node) {
        const bool known =
            std::find_if(std::begin(kNodeStates), std::end(kNodeStates),
                         [&](const char* s) { return node.second == s; }) != std::end(kNodeStates);
        return node.first == role &&
               (known ? node.second == state : std::string_view(state) == "other");
      });
      m_->nodes->Add({{"name", std::string(lab)}, {"role", role}, {"state", state}})
          .Set(static_cast<double>(count));
    }
  }
}

void LabMetrics::SetActiveDrift(std::string_view lab,
                                const std::vector<std::string>& active_kinds) {
  std::lock_guard guard(m_->mutex);
  m_->Initialise(lab);
  for (const char* kind : kDriftKinds) {
    const bool active =
        std::find(active_kinds.begin(), active_kinds.end(), kind) != active_kinds.end();
    m_->drift_active->Add({{"name", std::string(lab)}, {"kind", kind}}).Set(active ? 1 : 0);
  }
}

void LabMetrics::CountDriftDetected(std::string_view lab, std::string_view kind) {
  std::lock_guard guard(m_->mutex);
  m_->Initialise(lab);
  m_->drift_detected->Add({{"name", std::string(lab)}, {"kind", std::string(kind)}}).Increment();
}

void LabMetrics::CountRemediation(std::string_view lab, std::string_view kind,
                                  std::string_view result) {
  std::lock_guard guard(m_->mutex);
  m_->Initialise(lab);
  m_->remediations
      ->Add({{"name", std::string(lab)},
             {"kind", std::string(kind)},
             {"result", std::string(result)}})
      .Increment();
}

void LabMetrics::RemoveLab(std::string_view lab) {
  std::lock_guard guard(m_->mutex);
  if (auto it = m_->lab_gauges.find(lab); it != m_->lab_gauges.end()) {
    for (prometheus::Gauge* gauge : it->second) {
      // Each family's Remove ignores metrics it does not hold.
      m_->nodes->Remove(gauge);
      m_->drift_active->Remove(gauge);
    }
    m_->lab_gauges.erase(it);
  }
  if (auto it = m_->lab_counters.find(lab); it != m_->lab_counters.end()) {
    for (prometheus::Counter* counter : it->second) {
      m_->drift_detected->Remove(counter);
      m_->remediations->Remove(counter);
    }
    m_->lab_counters.erase(it);
  }
  if (auto it = m_->initialised.find(lab); it != m_->initialised.end()) m_->initialised.erase(it);
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
