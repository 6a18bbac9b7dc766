#include "reconcilers/labcluster_reconciler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "metrics/lab_metrics.h"

namespace vmlab::reconcilers {
namespace {

using controller::Condition;
using controller::DesiredLab;
using controller::LabRecord;

constexpr const char* kNotImplemented = "NotImplemented";
constexpr const char* kNotImplementedMessage =
    "this vmlab build validates and records labs; creating their networks, disks and VMs is not "
    "implemented yet";

Condition MakeCondition(const char* type, const char* status, std::string reason,
                        std::string message, std::int64_t generation) {
  Condition c;
  c.type = type;
  c.status = status;
  c.reason = std::move(reason);
  c.message = std::move(message);
  c.observed_generation = generation;
  return c;
}

}  // namespace

LabClusterReconciler::LabClusterReconciler(const controller::DesiredState& desired,
                                           controller::StatusStore& store,
                                           controller::Clock& clock, metrics::LabMetrics* metrics)
    : desired_(desired), store_(store), clock_(clock), metrics_(metrics) {}

Result<controller::ReconcileResult> LabClusterReconciler::Reconcile(const std::string& name) {
  const std::optional<DesiredLab> desired = desired_.Get(name);
  if (!desired) {
    if (store_.Get(name)) {
      if (auto removed = store_.Remove(name); !removed) return std::unexpected(removed.error());
      if (metrics_) metrics_->RemoveLab(name);
      spdlog::info("lab {}: deleted (its manifest is gone)", name);
    }
    return controller::ReconcileResult{};
  }

  const controller::WallTime now = clock_.WallNow();
  std::vector<Condition> conditions;
  auto updated = store_.Update(name, [&](LabRecord& r) {
    if (r.created == controller::WallTime{}) r.created = now;
    auto set = [&](Condition c, const char* event_type = nullptr) {
      const std::string type = c.type;
      const std::string reason = c.reason;
      const std::string message = c.message;
      if (controller::SetCondition(r, std::move(c), now) && event_type) {
        controller::AddEvent(r, event_type, reason, message, now);
      }
    };

    if (desired->spec && desired->spec_hash != r.spec_hash) {
      ++r.generation;
      r.spec_hash = desired->spec_hash;
      controller::AddEvent(r, "Normal", r.generation == 1 ? "Created" : "SpecChanged",
                           fmt::format("generation {}: spec {} from {}", r.generation,
                                       desired->spec_hash.substr(0, 12), desired->source),
                           now);
    }
    const std::int64_t generation = r.generation;

    if (desired->spec_valid) {
      set(MakeCondition("SpecValid", "True", "Valid", "the manifest is valid", generation),
          "Normal");
    } else {
      const std::string in_force =
          desired->spec ? fmt::format("; the last valid spec (generation {}) stays in force",
                                      generation)
                        : "; nothing is applied until it is valid";
      set(MakeCondition("SpecValid", "False", desired->invalid_reason,
                        desired->invalid_message + in_force, generation),
          "Warning");
    }

    if (desired->deletion_at) {
      set(MakeCondition("Deleting", "True", "ManifestRemoved",
                        fmt::format("the manifest is gone; the lab is deleted at {} unless a "
                                    "manifest defines it again",
                                    controller::FormatTimestamp(*desired->deletion_at)),
                        generation),
          "Warning");
    } else {
      set(MakeCondition("Deleting", "False", "ManifestPresent", "", generation));
    }

    r.nodes.clear();
    if (desired->spec) {
      for (const crds::PlannedNode& node : crds::PlanNodes(*desired->spec)) {
        r.nodes.push_back({node.name, std::string(crds::ToString(node.role)),
                           crds::Ipv4Address{static_cast<std::uint32_t>(node.address)}.ToString(),
                           "missing", "", false});
      }
      r.observed_generation = generation;
      for (const char* type : {"InfrastructureReady", "ControlPlaneReady", "WorkersReady"}) {
        set(MakeCondition(type, "Unknown", kNotImplemented, kNotImplementedMessage, generation));
      }
    }

    if (!desired->spec) {
      set(MakeCondition("Ready", "False", "SpecInvalid",
                        "the manifest has never been valid; see SpecValid", generation));
    } else if (desired->deletion_at) {
      set(MakeCondition("Ready", "False", "Deleting", "the lab is waiting to be deleted",
                        generation));
    } else {
      set(MakeCondition("Ready", "False", kNotImplemented, kNotImplementedMessage, generation));
    }
    conditions = r.conditions;
  });
  if (!updated) return std::unexpected(updated.error());
  if (metrics_) {
    for (const Condition& c : conditions) metrics_->SetCondition(name, c.type, c.status);
  }
  return controller::ReconcileResult{};
}

}  // namespace vmlab::reconcilers
