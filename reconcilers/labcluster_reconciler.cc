#include "reconcilers/labcluster_reconciler.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "metrics/lab_metrics.h"
#include "reconcilers/bootstrap/user_data.h"
#include "reconcilers/infrastructure/identity.h"

namespace vmlab::reconcilers {
namespace {

using controller::Condition;
using controller::DesiredLab;
using controller::LabRecord;

constexpr const char* kBootstrapNotObserved = "BootstrapNotObserved";
// status.nodes[].bootstrapPhase of a control plane kept after a refused scale-down.
constexpr const char* kKeptPhase = "kept: scale-down refused";
constexpr const char* kBootstrapMessage =
    "each node's seed carries its kubeadm bootstrap; this vmlab build does not read node "
    "progress or the Kubernetes API yet, so readiness is unknown";

// The contents of the host files the spec names (CNI manifest, add-ons).
Result<std::map<std::string, std::string>> ReadHostFiles(const crds::LabCluster& lab) {
  std::vector<std::string> paths = lab.spec.addons;
  paths.push_back(lab.spec.kubernetes.cni_manifest);
  std::map<std::string, std::string> files;
  for (const auto& path : paths) {
    if (!path.starts_with('/')) continue;
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    if (!(in && text << in.rdbuf())) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       fmt::format("cannot read {}, named in the spec; the primary control plane "
                                   "applies it from its seed",
                                   path));
    }
    files[path] = text.str();
  }
  return files;
}

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

std::string FirstAndCount(const std::vector<std::string>& lines) {
  if (lines.empty()) return "";
  return lines.size() == 1 ? lines.front()
                           : fmt::format("{} (and {} more)", lines.front(), lines.size() - 1);
}

// The last lines of a phase's log, for a condition message.
std::string LastLines(const std::string& log, std::size_t lines) {
  std::size_t at = log.size();
  while (at > 0 && log[at - 1] == '\n') --at;
  std::size_t cut = at;
  for (std::size_t n = 0; n < lines && cut > 0; ++n) {
    cut = log.rfind('\n', cut - 1);
    if (cut == std::string::npos) {
      cut = 0;
      break;
    }
  }
  std::string out = log.substr(cut == 0 ? 0 : cut + 1, at - (cut == 0 ? 0 : cut + 1));
  std::replace(out.begin(), out.end(), '\n', '|');
  return out;
}

// ControlPlaneReady or WorkersReady from the nodes of `role` and their progress.
// `api_error`: why the Kubernetes API could not be read; `api_read`: it was.
Condition RoleCondition(const char* type, std::string_view role,
                        const std::vector<controller::NodeStatus>& nodes,
                        const std::map<std::string, bootstrap::NodeProgress>& progress,
                        bool api_read, const std::string& api_error, std::int64_t generation) {
  std::size_t total = 0;
  std::size_t ready = 0;
  std::size_t done = 0;
  std::string failed;
  std::string busy;
  for (const auto& node : nodes) {
    if (node.role != role || node.bootstrap_phase == kKeptPhase) continue;
    ++total;
    ready += node.ready ? 1 : 0;
    const auto it = progress.find(node.name);
    if (it == progress.end()) {
      if (busy.empty()) busy = fmt::format("{}: booting", node.name);
      continue;
    }
    const auto& p = it->second;
    done += p.bootstrap_done ? 1 : 0;
    if (p.state == "failed" && failed.empty()) {
      failed = fmt::format("{}: phase {} failed (exit {}, attempt {}): {}", node.name, p.phase,
                           p.exit_code, p.attempt, LastLines(p.log_tail, 3));
    } else if (!p.bootstrap_done && busy.empty()) {
      busy = fmt::format("{}: phase {} {}", node.name, p.phase, p.state);
    }
  }
  const char* noun = role == "worker" ? "workers" : "control planes";
  if (total == 0)
    return MakeCondition(type, "True", "NoNodes", fmt::format("no {}", noun), generation);
  if (!failed.empty()) return MakeCondition(type, "False", "PhaseFailed", failed, generation);
  if (ready == total) {
    return MakeCondition(type, "True", "NodesReady",
                         fmt::format("{} of {} {} Ready", ready, total, noun), generation);
  }
  if (done == total && !api_error.empty()) {
    return MakeCondition(
        type, "Unknown", "KubernetesUnreachable",
        fmt::format("{} of {} {} finished their phases; {}", done, total, noun, api_error),
        generation);
  }
  if (done == total && api_read) {
    return MakeCondition(type, "False", "NodesNotReady",
                         fmt::format("{} of {} {} Ready in the Kubernetes API", ready, total, noun),
                         generation);
  }
  if (done == total) {
    return MakeCondition(
        type, "Unknown", kBootstrapNotObserved,
        fmt::format("{} of {} {} finished their phases; {}", done, total, noun, kBootstrapMessage),
        generation);
  }
  return MakeCondition(type, "False", "Bootstrapping",
                       fmt::format("{} of {} {} Ready; {}", ready, total, noun, busy), generation);
}

Condition ReadyCondition(const LabRecord& r, std::int64_t generation, bool simulated) {
  std::vector<std::string> waiting;
  std::string unknown_reason;  // set while every condition waited for is Unknown
  bool all_unknown = true;
  for (const char* type : {"InfrastructureReady", "ControlPlaneReady", "WorkersReady"}) {
    const Condition* c = r.FindCondition(type);
    if (c && c->status == "True") continue;
    waiting.push_back(fmt::format("{} {}", type, c ? c->reason : "unknown"));
    if (c && c->status == "Unknown") {
      if (unknown_reason.empty()) unknown_reason = c->reason;
    } else {
      all_unknown = false;
    }
  }
  if (waiting.empty()) {
    return MakeCondition("Ready", "True", simulated ? "SimulatedReady" : "Ready",
                         simulated ? "every node finished its phases (simulated guests: no "
                                     "Kubernetes runs in them)"
                                   : "infrastructure, control planes and workers are Ready",
                         generation);
  }
  return MakeCondition("Ready", all_unknown ? "Unknown" : "False",
                       all_unknown ? unknown_reason : "NotReady",
                       fmt::format("waiting for {}", fmt::join(waiting, ", ")), generation);
}

}  // namespace

LabClusterReconciler::LabClusterReconciler(const controller::DesiredState& desired,
                                           controller::StatusStore& store,
                                           InfrastructureReconciler& infrastructure,
                                           bootstrap::SecretStore& secrets,
                                           bootstrap::NodeEnvironment environment,
                                           controller::Clock& clock, metrics::LabMetrics* metrics,
                                           BootstrapRuntime runtime)
    : desired_(desired),
      store_(store),
      infrastructure_(infrastructure),
      secrets_(secrets),
      environment_(std::move(environment)),
      clock_(clock),
      metrics_(metrics),
      runtime_(runtime) {}

Result<controller::ReconcileResult> LabClusterReconciler::Delete(const std::string& name,
                                                                 const LabRecord& record) {
  auto outcome = infrastructure_.Converge(name, nullptr, "", record.retain_volumes, {});
  if (!outcome) return std::unexpected(outcome.error());
  if (!outcome->failures.empty() || !outcome->nothing_left) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("lab {}: teardown incomplete: {}", name,
                                 outcome->failures.empty() ? "objects remain"
                                                           : FirstAndCount(outcome->failures)));
  }
  // Retained disks still trust the lab's CA: its secrets stay with them.
  if (!record.retain_volumes) {
    if (auto removed = secrets_.Remove(name); !removed) return std::unexpected(removed.error());
  }
  if (auto removed = store_.Remove(name); !removed) return std::unexpected(removed.error());
  if (metrics_) metrics_->RemoveLab(name);
  if (runtime_.simulator) runtime_.simulator->ForgetLab(name);
  if (runtime_.progress) runtime_.progress->RemoveLab(name);
  if (runtime_.listeners) runtime_.listeners->Remove(name);
  spdlog::info("lab {}: deleted ({} domains{})", name, outcome->deleted.size(),
               record.retain_volumes ? "; volumes retained" : "");
  return controller::ReconcileResult{};
}

std::map<std::string, bootstrap::NodeProgress> LabClusterReconciler::FollowProgress(
    const std::string& name, const crds::LabCluster& spec, const bootstrap::LabSecrets& secrets,
    const InfrastructureOutcome& outcome) {
  if (!runtime_.progress) return {};
  bootstrap::LabIdentity identity;
  identity.progress_key = secrets.progress_key;
  std::map<std::string, std::vector<std::string>> phases;
  for (const auto& node : crds::PlanNodes(spec)) {
    identity.roles[node.name] = std::string(crds::ToString(node.role));
    for (const auto phase : bootstrap::PhasesFor(spec, node)) {
      phases[node.name].emplace_back(bootstrap::ToString(phase));
    }
  }
  identity.phases = phases;
  runtime_.progress->SetLab(name, std::move(identity));
  // A domain created anew boots a fresh disk: its progress starts over.
  for (const auto& node : outcome.created) {
    runtime_.progress->ResetNode(name, node);
    if (runtime_.simulator) runtime_.simulator->Forget(name, node);
  }
  for (const auto& node : outcome.deleted) {
    runtime_.progress->ResetNode(name, node);
    if (runtime_.simulator) runtime_.simulator->Forget(name, node);
  }
  if (runtime_.simulator) {
    std::set<std::string> failing;  // "node/phase"
    if (const auto it = spec.metadata.annotations.find(bootstrap::kSimulateFailureAnnotation);
        it != spec.metadata.annotations.end()) {
      std::string_view rest = it->second;
      while (!rest.empty()) {
        const auto comma = rest.find(',');
        std::string item(rest.substr(0, comma));
        std::erase(item, ' ');
        if (!item.empty()) failing.insert(item);
        rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
      }
    }
    for (const auto& node : outcome.nodes) {
      if (node.domain_state != "running" || runtime_.simulator->Playing(name, node.name)) continue;
      std::set<std::string> fail_phases;
      for (const auto& phase : phases[node.name]) {
        if (failing.contains(node.name + "/" + phase)) fail_phases.insert(phase);
      }
      runtime_.simulator->Boot(name, node.name, phases[node.name],
                               bootstrap::NodeToken(secrets.progress_key, node.name),
                               std::move(fail_phases));
    }
  }
  return runtime_.progress->Progress(name);
}

std::set<std::string> LabClusterReconciler::RemovableControlPlanes(
    const crds::LabCluster& spec, const bootstrap::LabSecrets& secrets,
    const std::optional<LabRecord>& before) const {
  std::set<std::string> dropped;
  if (before) {
    for (const auto& node : before->nodes) {
      if (node.role == "control-plane") dropped.insert(node.name);
    }
  }
  for (const auto& node : crds::PlanNodes(spec)) dropped.erase(node.name);
  std::set<std::string> removable;
  if (dropped.empty() || runtime_.simulator || !runtime_.kubernetes) return removable;
  // Its Node gone from the API means `kubeadm reset` ran there, which removes
  // the etcd member: only then may the domain go.
  auto access = bootstrap::AccessFromKubeconfig(secrets.admin_kubeconfig);
  if (!access) return removable;
  auto listed = runtime_.kubernetes(std::move(*access))->ListNodes();
  if (!listed) return removable;
  for (const auto& name : dropped) {
    if (std::none_of(listed->begin(), listed->end(),
                     [&](const bootstrap::KubeNode& n) { return n.name == name; })) {
      removable.insert(name);
    }
  }
  return removable;
}

void LabClusterReconciler::ReadKubernetes(
    const crds::LabCluster& spec, const bootstrap::LabSecrets& secrets,
    const std::map<std::string, bootstrap::NodeProgress>& progress,
    std::map<std::string, bool>& ready, bool& read, std::string& error) const {
  if (runtime_.simulator || !runtime_.kubernetes) return;
  // The API answers once the primary control plane has finished its phases.
  const auto nodes = crds::PlanNodes(spec);
  const auto primary = progress.find(nodes.front().name);
  if (primary == progress.end() || !primary->second.bootstrap_done) return;
  auto access = bootstrap::AccessFromKubeconfig(secrets.admin_kubeconfig);
  if (!access) {
    error = access.error().message;
    return;
  }
  auto listed = runtime_.kubernetes(std::move(*access))->ListNodes();
  if (!listed) {
    error = listed.error().message;
    return;
  }
  read = true;
  for (const auto& node : *listed) ready[node.name] = node.ready;
}

Result<controller::ReconcileResult> LabClusterReconciler::Reconcile(const std::string& name) {
  const std::optional<DesiredLab> desired = desired_.Get(name);
  const std::optional<LabRecord> before = store_.Get(name);
  if (!desired) {
    if (before) return Delete(name, *before);
    return controller::ReconcileResult{};
  }

  std::set<std::string> known_nodes;
  if (before) {
    for (const auto& node : before->nodes) {
      if (!node.domain_state.empty() && node.domain_state != "missing")
        known_nodes.insert(node.name);
    }
  }
  std::optional<InfrastructureOutcome> outcome;
  std::optional<Error> infra_error;
  std::optional<Error> secrets_error;
  std::map<std::string, bootstrap::NodeProgress> progress;
  std::string listener_error;
  std::map<std::string, bool> api_ready;  // from the Kubernetes API
  bool api_read = false;
  std::string api_error;
  if (desired->spec) {
    const crds::LabCluster& spec = *desired->spec;
    auto secrets = secrets_.LoadOrCreate(spec, clock_.WallNow());
    // Nodes report to a listener on the lab network's gateway (real guests only).
    const bool listen =
        runtime_.listeners && runtime_.progress_port > 0 && infrastructure_.Driver() != "TEST";
    const std::string gateway =
        crds::Ipv4Address{
            static_cast<std::uint32_t>(spec.spec.network.cidr.OffsetAddress(crds::kGatewayOffset))}
            .ToString();
    if (secrets) {
      // Host files are read when a seed is made: their errors are that node's.
      auto user_data = [&](const crds::PlannedNode& node) -> Result<std::string> {
        auto files = ReadHostFiles(spec);
        if (!files) return std::unexpected(files.error());
        bootstrap::NodeEnvironment env = environment_;
        env.host_files = std::move(*files);
        if (listen) env.progress_url = bootstrap::ProgressUrl(gateway, runtime_.progress_port);
        return bootstrap::RenderUserData(spec, node, *secrets, env);
      };
      auto converged =
          infrastructure_.Converge(name, &spec, desired->spec_hash, false, known_nodes, user_data,
                                   RemovableControlPlanes(spec, *secrets, before));
      if (converged) {
        outcome = std::move(*converged);
        if (listen && outcome->network_active) {
          // The gateway address exists once the network is up; nodes boot after that.
          if (auto listening = runtime_.listeners->Ensure(name, gateway, runtime_.progress_port);
              !listening) {
            listener_error = listening.error().message;
          }
        }
        progress = FollowProgress(name, spec, *secrets, *outcome);
        ReadKubernetes(spec, *secrets, progress, api_ready, api_read, api_error);
      } else {
        infra_error = converged.error();
      }
    } else {
      secrets_error = secrets.error();
    }
  }

  const controller::WallTime now = clock_.WallNow();
  std::vector<Condition> conditions;
  auto updated = store_.Update(name, [&](LabRecord& r) {
    if (r.created == controller::WallTime{}) r.created = now;
    auto set = [&](Condition c, const char* event_type = nullptr) {
      const std::string reason = c.reason;
      const std::string message = c.message;
      if (controller::SetCondition(r, std::move(c), now) && event_type && !message.empty()) {
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
    if (desired->spec) {
      r.retain_volumes = desired->spec->spec.deletion_policy == crds::DeletionPolicy::kRetain;
    }

    if (desired->spec_valid) {
      set(MakeCondition("SpecValid", "True", "Valid", "the manifest is valid", generation),
          "Normal");
    } else {
      const std::string in_force =
          desired->spec
              ? fmt::format("; the last valid spec (generation {}) stays in force", generation)
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

    if (infra_error) {
      set(MakeCondition("InfrastructureReady", "False", "HypervisorUnavailable",
                        infra_error->message, generation),
          "Warning");
    }
    if (!listener_error.empty()) {
      controller::AddEvent(r, "Warning", "ProgressListenerUnavailable",
                           listener_error + "; nodes fall back to console markers", now);
    }
    if (secrets_error) {
      set(MakeCondition("InfrastructureReady", "False", "SecretsUnavailable",
                        secrets_error->message + "; nothing was created or changed", generation),
          "Warning");
    }
    if (runtime_.simulator &&
        std::none_of(r.events.begin(), r.events.end(),
                     [](const controller::Event& e) { return e.reason == "GuestsSimulated"; })) {
      controller::AddEvent(r, "Normal", "GuestsSimulated",
                           "guests are simulated (--simulate-guests): vmlab plays each node's "
                           "phases; no Kubernetes runs in them",
                           now);
    }
    if (desired->spec) {
      r.endpoint = fmt::format("https://{}", bootstrap::EndpointAddress(*desired->spec));
      r.kubeconfig = secrets_error ? "" : secrets_.KubeconfigPath(name).string();
    }
    if (outcome) {
      r.observed_generation = generation;
      r.nodes = outcome->nodes;
      // Control planes kept although the spec dropped them stay in status, so
      // that they are known (never taken for orphans) until they may go.
      for (const auto& kept : outcome->refused) {
        controller::NodeStatus node{kept, "control-plane", "", "running", kKeptPhase, false};
        if (before) {
          for (const auto& old : before->nodes) {
            if (old.name == kept) node.ip = old.ip;
          }
        }
        r.nodes.push_back(std::move(node));
      }
      r.drift.clear();
      std::vector<std::string> repaired;
      std::vector<std::string> reported;
      for (const auto& d : outcome->drift) {
        r.drift.push_back({d.kind, d.object, d.message, d.remediated});
        controller::AddEvent(
            r, "Warning", d.kind,
            d.message + (d.remediated ? "; repairing" : "; reported only (drift policy Report)"),
            now);
        (d.remediated ? repaired : reported).push_back(fmt::format("{} {}", d.kind, d.object));
      }
      if (!outcome->created.empty()) {
        controller::AddEvent(r, "Normal", "DomainsCreated",
                             fmt::format("created {}", fmt::join(outcome->created, ", ")), now);
      }
      if (!outcome->deleted.empty()) {
        controller::AddEvent(r, "Normal", "DomainsDeleted",
                             fmt::format("deleted {}", fmt::join(outcome->deleted, ", ")), now);
      }
      for (const auto& node : outcome->restarted) {
        controller::AddEvent(
            r, "Normal", "DomainRestarted",
            fmt::format("{} redefined and restarted with the spec's vCPUs and memory", node), now);
      }
      if (r.drift.empty()) {
        set(MakeCondition("Drifted", "False", "NoDrift", "", generation));
      } else {
        std::string message;
        if (!repaired.empty()) message += fmt::format("repaired: {}", fmt::join(repaired, ", "));
        if (!reported.empty()) {
          message += fmt::format("{}reported only (drift policy Report): {}",
                                 message.empty() ? "" : "; ", fmt::join(reported, ", "));
        }
        set(MakeCondition("Drifted", "True", "DriftFound", message, generation));
      }
      std::size_t running = 0;
      for (const auto& n : outcome->nodes) running += n.domain_state == "running" ? 1u : 0u;
      const auto domain_type = infrastructure_.DomainType();
      if (!outcome->preflight_error.empty()) {
        set(MakeCondition("InfrastructureReady", "False", "PreflightFailed",
                          outcome->preflight_error + "; nothing was created", generation),
            "Warning");
      } else if (!outcome->failures.empty()) {
        set(MakeCondition("InfrastructureReady", "False", "ActionFailed",
                          FirstAndCount(outcome->failures), generation),
            "Warning");
      } else if (!outcome->refused.empty()) {
        set(MakeCondition(
                "InfrastructureReady", "False", "ControlPlaneScaleDownRefused",
                fmt::format(
                    "{} kept: the spec has fewer control planes, but removing one whose etcd "
                    "member is still in the cluster costs etcd quorum; run `kubeadm reset` on it "
                    "and `kubectl delete node` it (vmlab removes the VM once the Node is gone), "
                    "or set controlPlane.replicas back",
                    fmt::join(outcome->refused, ", ")),
                generation),
            "Warning");
      } else if (outcome->converged) {
        set(MakeCondition(
                "InfrastructureReady", "True", "Ready",
                fmt::format("network {} and {} domains running (libvirt {} driver, domain "
                            "type {}: {})",
                            infrastructure::NetworkName(name), outcome->nodes.size(),
                            infrastructure_.Driver(), domain_type.type, domain_type.reason),
                generation),
            "Normal");
      } else if (!reported.empty()) {
        set(MakeCondition("InfrastructureReady", "False", "DriftReported",
                          fmt::format("{} of {} domains running; drift is reported, not repaired",
                                      running, outcome->nodes.size()),
                          generation));
      } else {
        set(MakeCondition("InfrastructureReady", "False", "Creating",
                          fmt::format("{} of {} domains running", running, outcome->nodes.size()),
                          generation));
      }
      for (auto& node : r.nodes) {
        const auto it = progress.find(node.name);
        if (it == progress.end() || node.bootstrap_phase == kKeptPhase) continue;
        const auto& p = it->second;
        node.bootstrap_phase = p.state == "failed" ? fmt::format("{}: failed (exit {}, attempt {})",
                                                                 p.phase, p.exit_code, p.attempt)
                                                   : fmt::format("{}: {}", p.phase, p.state);
        node.ready = node.domain_state == "running" &&
                     (runtime_.simulator ? p.bootstrap_done : api_ready[node.name]);
      }
      // Guests run on a real hypervisor, or are simulated; reports from them
      // count as running guests too.
      const bool guests_run =
          runtime_.simulator || infrastructure_.Driver() != "TEST" || !progress.empty();
      for (const auto& [type, role] :
           {std::pair{"ControlPlaneReady", "control-plane"}, std::pair{"WorkersReady", "worker"}}) {
        auto c = guests_run
                     ? RoleCondition(type, role, r.nodes, progress, api_read, api_error, generation)
                     : MakeCondition(type, "Unknown", "NoGuests",
                                     "libvirt's test driver runs no guests, so no node "
                                     "bootstraps; vmlab controller --simulate-guests plays them",
                                     generation);
        if (c.status == "False" && c.reason == "PhaseFailed") {
          set(std::move(c), "Warning");
        } else {
          set(std::move(c));
        }
      }
    }

    if (!desired->spec) {
      set(MakeCondition("Ready", "False", "SpecInvalid",
                        "the manifest has never been valid; see SpecValid", generation));
    } else if (desired->deletion_at) {
      set(MakeCondition("Ready", "False", "Deleting", "the lab is waiting to be deleted",
                        generation));
    } else {
      set(ReadyCondition(r, generation, runtime_.simulator != nullptr), "Normal");
    }
    conditions = r.conditions;
  });
  if (!updated) return std::unexpected(updated.error());

  if (metrics_) {
    for (const Condition& c : conditions) metrics_->SetCondition(name, c.type, c.status);
    if (outcome) {
      std::vector<std::pair<std::string, std::string>> nodes;
      for (const auto& n : outcome->nodes) nodes.emplace_back(n.role, n.domain_state);
      metrics_->SetNodes(name, nodes);
      std::vector<std::string> kinds;
      for (const auto& d : outcome->drift) {
        kinds.push_back(d.kind);
        metrics_->CountDriftDetected(name, d.kind);
        if (d.remediated) {
          const bool failed = std::any_of(
              outcome->failures.begin(), outcome->failures.end(),
              [&](const std::string& f) { return f.find(d.object) != std::string::npos; });
          metrics_->CountRemediation(name, d.kind, failed ? "failure" : "success");
        }
      }
      metrics_->SetActiveDrift(name, kinds);
    }
  }
  if (infra_error) return std::unexpected(*infra_error);
  if (secrets_error) return std::unexpected(*secrets_error);
  if (outcome && !outcome->preflight_error.empty()) {
    // Not retried with backoff: the host or the spec has to change; the resync looks again.
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("lab {}: {}", name, outcome->preflight_error));
  }
  if (outcome && !outcome->failures.empty()) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("lab {}: {}", name, FirstAndCount(outcome->failures)));
  }
  const bool drift_left_alone = outcome && std::any_of(outcome->drift.begin(), outcome->drift.end(),
                                                       [](const auto& d) { return !d.remediated; });
  if (api_read || !api_error.empty()) {
    const bool all_ready = std::all_of(api_ready.begin(), api_ready.end(),
                                       [](const auto& entry) { return entry.second; });
    if (!all_ready || !api_error.empty() || api_ready.size() < progress.size()) {
      // Kubernetes settles by itself: look again soon rather than at the resync.
      return controller::ReconcileResult{.requeue_after = std::chrono::seconds(15)};
    }
  }
  if (outcome && !outcome->converged && !drift_left_alone) {
    // Still converging (one restart per pass, domains booting): look again soon.
    return controller::ReconcileResult{.requeue_after = std::chrono::seconds(2)};
  }
  return controller::ReconcileResult{};
}

}  // namespace vmlab::reconcilers
