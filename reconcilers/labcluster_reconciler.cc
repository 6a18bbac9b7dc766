#include "reconcilers/labcluster_reconciler.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "metrics/lab_metrics.h"
#include "reconcilers/bootstrap/drain.h"
#include "reconcilers/bootstrap/user_data.h"
#include "reconcilers/cache/cache_sets.h"
#include "reconcilers/infrastructure/identity.h"
#include "reconcilers/infrastructure/lab_layout.h"

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

// What identifies the base image's bytes for a golden image key: its path,
// size and modification time (not its content: hashing gigabytes at every
// reconcile would cost more than the key saves).
std::string BaseImageIdentity(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  const auto modified = std::filesystem::last_write_time(path, ec);
  return fmt::format("{} {} {}", path, ec ? 0 : size, ec ? 0 : modified.time_since_epoch().count());
}

// The last non-empty line of a log tail.
std::string LastLine(const std::string& text) {
  auto end = text.find_last_not_of("\n ");
  if (end == std::string::npos) return "";
  const auto start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1,
                     end - (start == std::string::npos ? 0 : start + 1) + 1);
}

// The comma-separated items of a lab annotation, without spaces.
std::set<std::string> AnnotationItems(const crds::LabCluster& spec, const char* annotation) {
  std::set<std::string> items;
  const auto it = spec.metadata.annotations.find(annotation);
  if (it == spec.metadata.annotations.end()) return items;
  std::string_view rest = it->second;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string item(rest.substr(0, comma));
    std::erase(item, ' ');
    if (!item.empty()) items.insert(item);
    rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
  }
  return items;
}

// The primary control plane has finished its phases (as reported now, or as
// status said before a restart): the lab has a Kubernetes API.
bool PrimaryDone(const crds::LabCluster& spec,
                 const std::map<std::string, bootstrap::NodeProgress>& progress,
                 const std::optional<LabRecord>& before) {
  const std::string primary = crds::PlanNodes(spec).front().name;
  if (const auto it = progress.find(primary); it != progress.end()) {
    return it->second.bootstrap_done;
  }
  if (before) {
    for (const auto& node : before->nodes) {
      if (node.name == primary) return node.bootstrap_phase == "primary: done";
    }
  }
  return false;
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
                        const std::set<std::string>& not_planned,
                        const std::map<std::string, bootstrap::NodeProgress>& progress,
                        bool api_read, const std::string& api_error, std::int64_t generation) {
  std::size_t total = 0;
  std::size_t ready = 0;
  std::size_t done = 0;
  std::string failed;
  std::string busy;
  for (const auto& node : nodes) {
    if (node.role != role || not_planned.contains(node.name)) continue;
    ++total;
    const auto it = progress.find(node.name);
    if (it == progress.end()) {
      ready += node.ready ? 1 : 0;
      if (busy.empty()) busy = fmt::format("{}: booting", node.name);
      continue;
    }
    const auto& p = it->second;
    done += p.bootstrap_done ? 1 : 0;
    // A Node Ready in the API whose phases still run is not ready yet: a
    // joining control plane's kubelet is Ready before its etcd member and
    // API server are.
    ready += node.ready && p.bootstrap_done ? 1 : 0;
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
  // Console logs of the lab's nodes a crash kept from going with their domains.
  {
    std::error_code ec;
    const auto console = infrastructure::ConsoleDir(infrastructure_.StateDir());
    for (std::filesystem::directory_iterator it(console, ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string file = it->path().filename().string();
      if (file.ends_with(".log") &&
          infrastructure::IsLabNode(name, file.substr(0, file.size() - 4))) {
        std::error_code ignored;
        std::filesystem::remove(it->path(), ignored);
      }
    }
  }
  if (auto removed = store_.Remove(name); !removed) return std::unexpected(removed.error());
  if (metrics_) metrics_->RemoveLab(name);
  if (runtime_.simulator) runtime_.simulator->ForgetLab(name);
  if (runtime_.progress) runtime_.progress->RemoveLab(name);
  if (runtime_.listeners) runtime_.listeners->Remove(name);
  if (runtime_.apt_cache) runtime_.apt_cache->Release(name);
  if (runtime_.registry_mirrors) runtime_.registry_mirrors->Release(name);
  if (runtime_.golden) runtime_.golden->Release(name);
  {
    std::lock_guard guard(kubernetes_mutex_);
    kubernetes_state_.erase(name);
  }
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
  auto nodes = crds::PlanNodes(spec);
  if (spec.spec.cache.golden_image) nodes.push_back(infrastructure::GoldenBuilderNode(spec));
  for (const auto& node : nodes) {
    identity.roles[node.name] =
        node.index == 0 ? "golden-builder" : std::string(crds::ToString(node.role));
    for (const auto phase : bootstrap::PhasesFor(spec, node)) {
      phases[node.name].emplace_back(bootstrap::ToString(phase));
    }
  }
  identity.phases = phases;
  identity.caches = StateOf(name).node_caches;
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
    const auto failing = AnnotationItems(spec, bootstrap::kSimulateFailureAnnotation);
    for (const auto& node : outcome.nodes) {
      if (node.domain_state != "running" || runtime_.simulator->Playing(name, node.name)) continue;
      std::set<std::string> fail_phases;
      for (const auto& phase : phases[node.name]) {
        if (failing.contains(node.name + "/" + phase)) fail_phases.insert(phase);
      }
      runtime_.simulator->Boot(
          name, node.name, phases[node.name], bootstrap::NodeToken(secrets.progress_key, node.name),
          std::move(fail_phases), secrets.token, secrets.token_created + secrets.token_ttl);
    }
  }
  return runtime_.progress->Progress(name);
}

Result<std::unique_ptr<bootstrap::KubernetesClient>> LabClusterReconciler::OpenKubernetes(
    const std::string& name, const bootstrap::LabSecrets& secrets) const {
  if (runtime_.simulator) return runtime_.simulator->Cluster(name)->Client();
  if (!runtime_.kubernetes) {
    return MakeError(ErrorCode::kUnavailable, "this controller does not use the Kubernetes API");
  }
  auto access = bootstrap::AccessFromKubeconfig(secrets.admin_kubeconfig);
  if (!access) return std::unexpected(access.error());
  return runtime_.kubernetes(std::move(*access));
}

LabClusterReconciler::KubernetesState& LabClusterReconciler::StateOf(const std::string& lab) {
  std::lock_guard guard(kubernetes_mutex_);
  return kubernetes_state_[lab];  // std::map entries stay where they are
}

Status LabClusterReconciler::LeaveEtcd(const std::string& name, const crds::LabCluster& spec,
                                       const bootstrap::LabSecrets& secrets, const std::string& cp,
                                       const std::string& cp_ip, bool only_if_unhealthy,
                                       ScaleDown& out) {
  std::unique_ptr<bootstrap::EtcdClient> etcd;
  if (runtime_.simulator) {
    etcd = runtime_.simulator->Cluster(name)->Etcd();
  } else if (runtime_.etcd) {
    auto& identity = StateOf(name).etcd_identity;
    if (identity.cert_pem.empty()) {
      bootstrap::CertRequest request;
      request.common_name = "vmlab-etcd-client";
      request.client = true;
      request.validity = std::chrono::hours(24 * 365);
      auto issued = bootstrap::IssueCert(secrets.etcd_ca, request);
      if (!issued) return std::unexpected(issued.error());
      identity = std::move(*issued);
    }
    bootstrap::EtcdAccess access;
    for (const auto& node : crds::PlanNodes(spec)) {
      if (node.role != crds::NodeRole::kControlPlane) continue;
      access.endpoints.push_back(fmt::format(
          "https://{}:{}", crds::Ipv4Address{static_cast<std::uint32_t>(node.address)}.ToString(),
          runtime_.etcd_port));
    }
    access.ca_pem = secrets.etcd_ca.cert_pem;
    access.client_cert_pem = identity.cert_pem;
    access.client_key_pem = identity.key_pem;
    etcd = runtime_.etcd(std::move(access));
  } else {
    return MakeError(ErrorCode::kUnavailable, "this controller does not reach etcd");
  }
  auto members = etcd->ListMembers();
  if (!members) {
    return MakeError(members.error().code,
                     fmt::format("cannot list etcd's members ({}); its member must leave etcd "
                                 "before its VM goes; vmlab retries",
                                 members.error().message));
  }
  const std::string peer = fmt::format("https://{}:2380", cp_ip);
  const auto member =
      std::find_if(members->begin(), members->end(), [&](const bootstrap::EtcdMember& m) {
        return m.name == cp || (!cp_ip.empty() && std::find(m.peer_urls.begin(), m.peer_urls.end(),
                                                            peer) != m.peer_urls.end());
      });
  if (member == members->end()) return {};  // gone already
  if (only_if_unhealthy && etcd->Healthy(*member)) {
    return MakeError(
        ErrorCode::kAborted,
        fmt::format("{}'s etcd member answers: it is not the stale one; left alone", cp));
  }
  std::set<std::string> healthy;
  for (const auto& m : *members) {
    if (m.name != cp && etcd->Healthy(m)) healthy.insert(m.name);
  }
  const auto check = bootstrap::CheckMemberRemoval(*members, healthy, cp);
  if (!check.allowed) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("removing its etcd member now would cost etcd its quorum: {}; "
                                 "vmlab retries once the other members are healthy, or set "
                                 "controlPlane.replicas back",
                                 check.message));
  }
  if (auto removed = etcd->RemoveMember(member->id); !removed) {
    return MakeError(removed.error().code,
                     fmt::format("etcd refused to remove its member: {}", removed.error().message));
  }
  out.events.emplace_back("EtcdMemberRemoved", fmt::format("{}'s etcd member {:x} removed ({})", cp,
                                                           member->id, check.message));
  return {};
}

LabClusterReconciler::ScaleDown LabClusterReconciler::PrepareKubernetes(
    const std::string& name, const crds::LabCluster& spec, bootstrap::LabSecrets& secrets,
    bool primary_done, const std::optional<LabRecord>& before,
    const std::map<std::string, bootstrap::NodeProgress>& progress) {
  ScaleDown out;
  std::set<std::string> planned;
  for (const auto& node : crds::PlanNodes(spec)) planned.insert(node.name);
  std::vector<std::pair<int, std::string>> dropped_cps;      // (index, name)
  std::vector<std::pair<int, std::string>> dropped_workers;  // (index, name)
  std::map<std::string, std::string> phase_before;           // status.nodes[].bootstrapPhase
  if (before) {
    for (const auto& node : before->nodes) {
      phase_before[node.name] = node.bootstrap_phase;
      if (planned.contains(node.name) || node.domain_state == "missing") continue;
      const auto dash = node.name.rfind('-');
      int index = 0;
      try {
        index = std::stoi(node.name.substr(dash + 1));
      } catch (const std::exception&) {
      }
      (node.role == "control-plane" ? dropped_cps : dropped_workers).emplace_back(index, node.name);
    }
  }
  // Highest index first.
  std::sort(dropped_cps.rbegin(), dropped_cps.rend());
  std::sort(dropped_workers.rbegin(), dropped_workers.rend());
  // Whether `node` may have joined the cluster: it reached its join phase
  // (`role_phase`), now or before a restart, or vmlab was already taking it out.
  auto may_have_joined = [&](const std::string& node, const std::string& role_phase) {
    const auto p = progress.find(node);
    if (p != progress.end()) return p->second.phase == role_phase;
    const std::string& phase = phase_before[node];
    return phase.starts_with(role_phase) || phase.starts_with("kept") ||
           phase.starts_with("drain") || phase.starts_with("waiting to drain") ||
           phase.starts_with("leaving");
  };
  // A control plane that never reached its join has no etcd member: it goes.
  std::erase_if(dropped_cps, [&](const auto& cp) {
    if (may_have_joined(cp.second, "secondary")) return false;
    out.removable_control_planes.insert(cp.second);
    return true;
  });

  auto& drains = StateOf(name).drains;
  const bool cordoned_by_us = !drains.empty();
  const bool rotation_due =
      primary_done && clock_.WallNow() - secrets.token_created >= secrets.token_ttl / 2;
  // Before the primary is done there is no cluster, so no worker joined one:
  // dropped workers simply go. Control planes still ask (conservatively).
  if (!primary_done) dropped_workers.clear();
  if (dropped_cps.empty() && dropped_workers.empty() && !cordoned_by_us && !rotation_due) {
    return out;
  }
  auto opened = OpenKubernetes(name, secrets);
  std::unique_ptr<bootstrap::KubernetesClient> client;
  std::string api_error;
  std::optional<std::vector<bootstrap::KubeNode>> listed;
  if (opened) {
    client = std::move(*opened);
    auto nodes = client->ListNodes();
    if (nodes) {
      listed = std::move(*nodes);
    } else {
      api_error = nodes.error().message;
    }
  } else {
    api_error = opened.error().message;
  }
  auto in_api = [&](const std::string& node) {
    return std::any_of(listed->begin(), listed->end(),
                       [&](const bootstrap::KubeNode& n) { return n.name == node; });
  };

  if (listed && rotation_due) {
    // A new token in the cluster first, then on disk: seeds made from now on
    // carry it, and a failure in between leaves only an unused token behind.
    auto token = bootstrap::MakeBootstrapToken();
    if (token) {
      const auto now = clock_.WallNow();
      const bootstrap::BootstrapTokenSecret secret{
          *token, now + bootstrap::kBootstrapTokenTtl,
          fmt::format("made by vmlab for lab {}: nodes created from now on join with it", name)};
      if (auto created = client->CreateBootstrapToken(secret); !created) {
        out.events.emplace_back("BootstrapTokenRotationFailed", created.error().message);
      } else if (auto rotated = secrets_.RotateToken(name, *token, now); !rotated) {
        out.events.emplace_back("BootstrapTokenRotationFailed", rotated.error().message);
      } else {
        const auto old_id = secrets.token.substr(0, 6);
        secrets = std::move(*rotated);
        out.events.emplace_back(
            "BootstrapTokenRotated",
            fmt::format("bootstrap token {} replaced by {} (valid until {}); the old one stays "
                        "valid until it expires",
                        old_id, token->substr(0, 6),
                        controller::FormatTimestamp(now + bootstrap::kBootstrapTokenTtl)));
      }
    }
  }

  // Control planes, one at a time, highest index first: the etcd member goes
  // first, and only while the members left keep a healthy quorum; then the
  // node is drained and its Node deleted; then the VM may go.
  for (const auto& [index, cp] : dropped_cps) {
    if (!out.cp_reason.empty()) {
      out.phases[cp] = "kept: waiting to leave the cluster";
      continue;
    }
    std::string cp_ip;
    if (before) {
      for (const auto& node : before->nodes) {
        if (node.name == cp) cp_ip = node.ip;
      }
    }
    auto left = LeaveEtcd(name, spec, secrets, cp, cp_ip, false, out);
    if (!left) {
      out.phases[cp] = "kept: scale-down refused";
      out.cp_reason = "ControlPlaneScaleDownRefused";
      out.cp_message = fmt::format("{} kept: {}", cp, left.error().message);
      continue;
    }
    if (!listed) {
      out.phases[cp] = "leaving: Kubernetes API unreachable";
      out.cp_reason = "RemovingControlPlane";
      out.cp_message = fmt::format(
          "{} left etcd; its Node is deleted before its VM goes, but the Kubernetes API cannot "
          "be read ({})",
          cp, api_error);
      continue;
    }
    auto step = bootstrap::DrainNode(*client, cp);
    if (step && step->state == bootstrap::DrainStep::State::kDone) {
      out.removable_control_planes.insert(cp);
      out.events.emplace_back(
          "NodeDrained", fmt::format("{} drained and its Node deleted; its VM is removed", cp));
      continue;
    }
    out.phases[cp] = "leaving: draining";
    out.cp_reason = "RemovingControlPlane";
    out.cp_message =
        !step ? fmt::format("{} left etcd; draining it: {}", cp, step.error().message)
              : fmt::format("{} left etcd; draining it: {} pod(s) left{}", cp, step->remaining,
                            step->message.empty() ? "" : "; " + step->message);
  }
  // Workers vmlab cordoned that the spec wants again: uncordoned.
  if (listed) {
    for (auto it = drains.begin(); it != drains.end();) {
      if (planned.contains(it->first)) {
        if (in_api(it->first)) {
          (void)client->SetUnschedulable(it->first, false);
          out.events.emplace_back(
              "NodeUncordoned",
              fmt::format("{} is in the spec again: uncordoned; its drain is abandoned",
                          it->first));
        }
        it = drains.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Workers: drained one at a time, highest index first.
  std::vector<std::string> waiting;
  for (const auto& [index, worker] : dropped_workers) {
    if (!listed) {
      if (!may_have_joined(worker, "worker")) continue;  // never reached its join
      out.held_workers.insert(worker);
      out.phases[worker] = "waiting to drain: Kubernetes API unreachable";
      out.reason = "DrainWaitingForKubernetes";
      out.message = fmt::format(
          "{} may be a Node of the cluster, but the Kubernetes API cannot be read ({}); vmlab "
          "keeps the VM until it can drain it, or until its Node is gone (`kubectl delete node`)",
          worker, api_error);
      continue;
    }
    if (!in_api(worker)) {
      // Not (or no longer) a Node: the VM may go. A drain vmlab started
      // whose last step deleted the Node but did not hear back (a timeout
      // on a loaded host) is done all the same.
      if (drains.erase(worker) > 0) {
        out.events.emplace_back(
            "NodeDrained",
            fmt::format("{} drained: its Node is gone; its VM is removed", worker));
      }
      continue;
    }
    if (!out.reason.empty()) {
      out.held_workers.insert(worker);
      out.phases[worker] = "waiting to drain";
      waiting.push_back(worker);
      continue;
    }
    const auto [started, fresh] = drains.try_emplace(worker, clock_.Now());
    if (fresh) {
      out.events.emplace_back("DrainStarted",
                              fmt::format("draining {}: cordon, evict its pods, delete its Node, "
                                          "then remove its VM",
                                          worker));
    }
    auto step = bootstrap::DrainNode(*client, worker);
    if (step && step->state == bootstrap::DrainStep::State::kDone) {
      drains.erase(worker);
      out.events.emplace_back(
          "NodeDrained", fmt::format("{} drained and its Node deleted; its VM is removed", worker));
      continue;
    }
    out.held_workers.insert(worker);
    const auto waited =
        std::chrono::duration_cast<std::chrono::seconds>(clock_.Now() - started->second);
    if (!step) {
      out.phases[worker] = "draining";
      out.reason = "DrainWaitingForKubernetes";
      out.message = fmt::format("draining {}: {}; retrying", worker, step.error().message);
    } else if (step->state == bootstrap::DrainStep::State::kBlocked) {
      const bool timed_out = waited >= runtime_.drain_timeout;
      out.phases[worker] = "drain blocked";
      out.reason = timed_out ? "DrainTimedOut" : "DrainBlocked";
      out.message = fmt::format(
          "draining {}: {} pod(s) left; eviction refused for {}{}; the VM is kept and the "
          "eviction retried: let the PodDisruptionBudget allow it (scale the workload up, or move "
          "the pod), `kubectl delete node {}` to give up on a graceful drain, or set "
          "workers.replicas back",
          worker, step->remaining, step->message,
          timed_out ? fmt::format(" (blocked for {} s, past the drain timeout of {} s)",
                                  waited.count(), runtime_.drain_timeout.count())
                    : "",
          worker);
    } else {
      out.phases[worker] = "draining";
      out.reason = "DrainingWorkers";
      out.message = fmt::format("draining {}: {} pod(s) evicted, {} to go", worker, step->evicted,
                                step->remaining);
    }
  }
  if (!waiting.empty()) {
    out.message +=
        fmt::format("; then {} (one at a time, highest index first)", fmt::join(waiting, ", "));
  }
  return out;
}

void LabClusterReconciler::ReadKubernetes(
    const std::string& name, const crds::LabCluster& spec, const bootstrap::LabSecrets& secrets,
    bool primary_done, const std::map<std::string, bootstrap::NodeProgress>& progress,
    std::map<std::string, bool>& ready, bool& read, std::string& error,
    std::vector<std::pair<std::string, std::string>>& events) {
  // The API answers once the primary control plane has finished its phases.
  if (!primary_done || (!runtime_.simulator && !runtime_.kubernetes)) return;
  auto client = OpenKubernetes(name, secrets);
  if (!client) {
    error = client.error().message;
    return;
  }
  // The Nodes, read once: readiness, and the stale ones below.
  auto listed = (*client)->ListNodes();
  if (!listed) {
    error = listed.error().message;
    return;
  }
  // A node created anew from a fresh disk joins again under its old name:
  // its old etcd member (a control plane) and its old Node go first, while
  // the node has not reached its join.
  auto& stale = StateOf(name).stale_nodes;
  std::map<std::string, std::string> control_planes;  // name -> address
  for (const auto& node : crds::PlanNodes(spec)) {
    if (node.role == crds::NodeRole::kControlPlane) {
      control_planes[node.name] =
          crds::Ipv4Address{static_cast<std::uint32_t>(node.address)}.ToString();
    }
  }
  for (auto it = stale.begin(); it != stale.end();) {
    const auto p = progress.find(*it);
    if (p != progress.end() && (p->second.phase == "worker" || p->second.phase == "secondary")) {
      it = stale.erase(it);  // joining already
      continue;
    }
    if (control_planes.contains(*it)) {
      ScaleDown left;
      if (auto left_etcd = LeaveEtcd(name, spec, secrets, *it, control_planes[*it], true, left);
          !left_etcd) {
        // Its member answers: the node rejoined already. Else retried next pass.
        it = left_etcd.error().code == ErrorCode::kAborted ? stale.erase(it) : std::next(it);
        continue;
      }
      events.insert(events.end(), left.events.begin(), left.events.end());
    }
    const auto old = std::find_if(listed->begin(), listed->end(),
                                  [&](const bootstrap::KubeNode& n) { return n.name == *it; });
    // Only a NotReady Node is the stale one: a Ready one is the node that
    // joined again (its reports did not reach vmlab), and stays.
    if (old != listed->end() && !old->ready) {
      if (auto deleted = (*client)->DeleteNode(*it); !deleted) {
        ++it;  // retried on the next pass
        continue;
      }
      events.emplace_back("StaleNodeDeleted",
                          fmt::format("{} was created anew from a fresh disk: its old Node was "
                                      "deleted so that it joins as a new one",
                                      *it));
      listed->erase(old);
    }
    it = stale.erase(it);
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
    // A node whose domain went missing stays known until it is back: under
    // drift policy Report the drift stays reported, and a repair that failed is
    // tried again as a repair; neither is mistaken for a node never created.
    for (const auto& d : before->drift) {
      if (d.kind == "DomainMissing") known_nodes.insert(d.object);
    }
  }
  std::optional<InfrastructureOutcome> outcome;
  std::optional<Error> infra_error;
  std::optional<Error> secrets_error;
  std::string trusted_ca;  // the CA the lab's seeds carry, once its secrets exist
  std::map<std::string, bootstrap::NodeProgress> progress;
  std::string listener_error;
  std::map<std::string, bool> api_ready;  // from the Kubernetes API
  bool api_read = false;
  std::string api_error;
  ScaleDown scale;
  std::vector<std::pair<std::string, std::string>> api_events;  // (reason, message)
  bool wants_apt = false;
  std::string apt_proxy;  // the URL the lab's nodes use
  std::string apt_error;
  std::string archive_note;  // the image archives served, for CacheReady
  bool wants_mirrors = false;
  std::map<std::string, std::string> mirrors;  // upstream -> the mirror the lab's nodes use
  std::string mirror_error;
  std::string warm_note;      // how far warming of the lab's images went
  std::string apt_warm_note;  // and of its Kubernetes packages
  // spec.cache.goldenImage: what new nodes boot from, for CacheReady and
  // InfrastructureReady.
  GoldenOptions golden;
  std::string golden_note;
  std::string golden_problem;  // CacheReady reason when the image cannot be used
  if (desired->spec) {
    const crds::LabCluster& spec = *desired->spec;
    // A lab whose status knows nodes it created has been given secrets,
    // whether or not its status (older than the field) recorded their CA.
    auto secrets = secrets_.LoadOrCreate(
        spec, clock_.WallNow(), before ? before->trusted_ca : std::string(), !known_nodes.empty());
    if (secrets) trusted_ca = secrets->discovery_hash;
    // Nodes report to a listener on the lab network's gateway (real guests only).
    const bool listen =
        runtime_.listeners && runtime_.progress_port > 0 && infrastructure_.Driver() != "TEST";
    const std::string gateway =
        crds::Ipv4Address{
            static_cast<std::uint32_t>(spec.spec.network.cidr.OffsetAddress(crds::kGatewayOffset))}
            .ToString();
    // The apt cache, on the lab's gateway (real guests whose spec wants it).
    wants_apt = runtime_.apt_cache && runtime_.apt_cache->Enabled() && spec.spec.cache.apt &&
                infrastructure_.Driver() != "TEST";
    std::mutex apt_mutex;  // seeds are made side by side
    auto serve_apt = [&] {
      auto proxy = runtime_.apt_cache->Serve(name, gateway);
      std::lock_guard guard(apt_mutex);
      if (proxy) {
        apt_proxy = *proxy;  // an error from a seed made earlier in this pass stays visible
      } else {
        apt_error = proxy.error().message;
      }
      return proxy ? *proxy : std::string();
    };
    // Registry mirrors, on the lab's gateway too.
    wants_mirrors = runtime_.registry_mirrors && runtime_.registry_mirrors->Enabled() &&
                    spec.spec.cache.images && infrastructure_.Driver() != "TEST";
    auto serve_mirrors = [&] {
      auto served = runtime_.registry_mirrors->Serve(name, gateway);
      std::lock_guard guard(apt_mutex);
      if (served) {
        mirrors = *served;
      } else {
        mirror_error = served.error().message;
      }
      return served ? *served : std::map<std::string, std::string>{};
    };
    // Host files, read once per pass: an error is a seed's (that node's);
    // the image sets and the golden key go without them.
    const auto host_files = ReadHostFiles(spec);
    const auto& readable_files = host_files ? *host_files : std::map<std::string, std::string>{};
    if (secrets) {
      auto user_data = [&](const crds::PlannedNode& node) -> Result<std::string> {
        if (!host_files) return std::unexpected(host_files.error());
        bootstrap::NodeEnvironment env = environment_;
        env.host_files = *host_files;
        if (listen) env.progress_url = bootstrap::ProgressUrl(gateway, runtime_.progress_port);
        // The network is up when seeds are made; a node without the cache fetches directly.
        if (wants_apt) {
          env.apt_proxy = serve_apt();
          env.apt_https_remap = runtime_.apt_cache->Managed();
        }
        if (wants_mirrors) env.registry_mirrors = serve_mirrors();
        return bootstrap::RenderUserData(spec, node, *secrets, env);
      };
      if (runtime_.simulator) {
        runtime_.simulator->Cluster(name)->BlockEvictions(
            AnnotationItems(spec, bootstrap::kSimulateBlockedEvictionAnnotation));
      }
      const auto progress_before = runtime_.progress
                                       ? runtime_.progress->Progress(name)
                                       : std::map<std::string, bootstrap::NodeProgress>{};
      scale = PrepareKubernetes(name, spec, *secrets, PrimaryDone(spec, progress_before, before),
                                before, progress_before);
      const bool wants_golden = spec.spec.cache.golden_image && runtime_.golden && listen;
      std::string golden_key;
      const std::string builder = infrastructure::GoldenBuilderNode(spec).name;
      // What new nodes boot from: the golden image when built; else they wait
      // while this lab (or another with the same key) builds it; after a
      // failed build, spec.image.path.
      auto plan_golden = [&] {
        golden = {};
        golden_note.clear();
        golden_problem.clear();
        if (!wants_golden) {
          if (runtime_.golden) runtime_.golden->Release(name);
          return;
        }
        golden_key =
            cache::GoldenImageKey(spec, readable_files, BaseImageIdentity(spec.spec.image.path));
        const std::string short_key = golden_key.substr(0, 12);
        if (auto ready = runtime_.golden->Ready(golden_key)) {
          golden.root_backing = ready->string();
          golden_note =
              fmt::format("new nodes boot from golden image {} ({})", short_key, ready->string());
          runtime_.golden->Release(name);
          return;
        }
        if (auto failed = runtime_.golden->Failed(golden_key)) {
          golden_problem = "GoldenImageFailed";
          golden_note = fmt::format(
              "golden image {} could not be built ({}); new nodes boot from spec.image.path "
              "until it is tried again",
              short_key, *failed);
          return;
        }
        const std::string owner = runtime_.golden->Claim(golden_key, name);
        golden.hold_new_nodes = true;
        if (owner != name) {
          golden_note = fmt::format("new nodes wait for golden image {}, which lab {} builds",
                                    short_key, owner);
          return;
        }
        golden.builder = true;
        golden_note = fmt::format("building golden image {} on {}", short_key, builder);
      };
      plan_golden();
      auto converged =
          infrastructure_.Converge(name, &spec, desired->spec_hash, false, known_nodes, user_data,
                                   scale.removable_control_planes, scale.held_workers, golden);
      if (converged && golden.builder) {
        auto& builder_key = StateOf(name).builder_key;
        if (std::find(converged->created.begin(), converged->created.end(), builder) !=
            converged->created.end()) {
          builder_key = golden_key;
        } else if (converged->builder_state != "missing" && builder_key != golden_key) {
          // A builder made for another key (the spec changed while it ran), or
          // by an earlier controller: it goes; the next pass starts a new one.
          golden.builder = false;
          converged = infrastructure_.Converge(name, &spec, desired->spec_hash, false, known_nodes,
                                               user_data, scale.removable_control_planes,
                                               scale.held_workers, golden);
          golden.builder = true;
        }
      }
      if (converged && golden.builder &&
          std::find(converged->deleted.begin(), converged->deleted.end(), builder) ==
              converged->deleted.end()) {
        // The builder reports its phases, then seals itself and powers off.
        const auto reports = runtime_.progress ? runtime_.progress->Progress(name)
                                               : std::map<std::string, bootstrap::NodeProgress>{};
        const auto it = reports.find(builder);
        const bool done =
            it != reports.end() && it->second.phase == "golden" && it->second.state == "done";
        const std::string state = converged->builder_state;
        std::optional<std::string> failure;
        bool finished = false;
        if (done && state == "shutoff") {
          const auto disk =
              infrastructure::PoolPath(infrastructure_.StateDir()) / (builder + "-root.qcow2");
          auto made = runtime_.golden->Finish(golden_key, name, disk);
          finished = made.has_value();
          if (!made) failure = made.error().message;  // recorded by Finish
        } else if (it != reports.end() && it->second.state == "failed" && it->second.attempt >= 3) {
          failure = fmt::format("phase {} failed (exit {}): {}", it->second.phase,
                                it->second.exit_code, LastLine(it->second.log_tail));
          runtime_.golden->Fail(golden_key, name, *failure);
        } else if (state == "shutoff" && !done) {
          failure = fmt::format(
              "{} powered off before its phases finished (its console: {})", builder,
              (infrastructure::ConsoleDir(infrastructure_.StateDir()) / (builder + ".log"))
                  .string());
          runtime_.golden->Fail(golden_key, name, *failure);
        } else if (runtime_.golden->TimedOut(golden_key, name)) {
          failure = fmt::format("{} did not finish within the build timeout", builder);
          runtime_.golden->Fail(golden_key, name, *failure);
        } else if (it != reports.end()) {
          golden_note += fmt::format(": phase {} {}", it->second.phase, it->second.state);
        }
        if (finished || failure) {
          if (failure) {
            api_events.emplace_back("GoldenImageFailed", *failure);
          } else {
            api_events.emplace_back(
                "GoldenImageBuilt",
                fmt::format("golden image {} built by {}", golden_key.substr(0, 12), builder));
          }
          plan_golden();  // the builder goes; the nodes come
          converged = infrastructure_.Converge(name, &spec, desired->spec_hash, false, known_nodes,
                                               user_data, scale.removable_control_planes,
                                               scale.held_workers, golden);
        }
      }
      if (converged) {
        // What serves each new node's downloads, for its phase durations.
        const std::string served = !golden.root_backing.empty()   ? "golden"
                                   : (wants_apt || wants_mirrors) ? "caches"
                                                                  : "none";
        auto& caches = StateOf(name).node_caches;
        for (const auto& node : converged->created) {
          caches[node] =
              node == builder ? ((wants_apt || wants_mirrors) ? "caches" : "none") : served;
        }
      }
      if (converged && runtime_.golden && wants_golden) {
        if (!golden.root_backing.empty()) {
          runtime_.golden->CountHits(static_cast<int>(
              std::count_if(converged->created.begin(), converged->created.end(),
                            [&](const std::string& node) { return node != builder; })));
        }
        runtime_.golden->Poll();
      }
      if (converged) {
        outcome = std::move(*converged);
        if (wants_apt && outcome->network_active && !serve_apt().empty() &&
            runtime_.apt_cache->Managed() && runtime_.warm_caches) {
          // Warming: the pinned Kubernetes packages (and what they depend on
          // from the same repository) into the cache while the VMs boot.
          bootstrap::NodeEnvironment env = environment_;
          env.apt_proxy = apt_proxy;
          env.apt_https_remap = true;
          const std::string prefix = spec.spec.kubernetes.version + "-";
          runtime_.apt_cache->Warm(name, bootstrap::AptRepository(spec, env),
                                   {{"kubelet", prefix}, {"kubeadm", prefix}, {"kubectl", prefix}});
          const auto warming = runtime_.apt_cache->Warming(name);
          if (warming.done && warming.failure.empty()) {
            apt_warm_note = fmt::format("{} Kubernetes package file(s) warmed", warming.warmed);
          } else if (warming.done) {
            apt_warm_note = "warming the Kubernetes packages failed (" + warming.failure +
                            "); nodes fetch them through the cache";
          } else {
            apt_warm_note = "warming the Kubernetes packages";
          }
        }
        if (wants_mirrors && outcome->network_active && !serve_mirrors().empty() &&
            runtime_.registry_mirrors->Managed() && runtime_.warm_caches) {
          // Warming: the lab's images into the mirrors while its VMs boot.
          runtime_.registry_mirrors->Warm(name, cache::LabImages(spec, readable_files));
          const auto warming = runtime_.registry_mirrors->Warming(name);
          const int mirrored = warming.images - warming.skipped;
          warm_note =
              fmt::format("{} of the lab's {} mirrored image(s) warmed", warming.warmed, mirrored);
          if (warming.failed > 0) {
            warm_note += fmt::format(" ({} could not be fetched: {})", warming.failed,
                                     warming.first_failure);
          }
          if (warming.skipped > 0) {
            warm_note += fmt::format("; {} from registries vmlab does not mirror", warming.skipped);
          }
        }
        // Image archives go to the nodes through their listener.
        if (listen && runtime_.archives && !spec.spec.cache.image_archives.empty()) {
          auto catalog = runtime_.archives->Scan(spec.spec.cache.image_archives);
          if (catalog) {
            archive_note =
                fmt::format("{} image archive(s) served to nodes", catalog->archives.size());
            if (!catalog->problems.empty()) {
              archive_note += fmt::format(" ({})", FirstAndCount(catalog->problems));
            }
            runtime_.listeners->SetArchives(name, std::move(catalog->archives));
          } else {
            archive_note = catalog.error().message + "; no archive is served";
            runtime_.listeners->SetArchives(name, {});
          }
        } else if (listen && runtime_.listeners) {
          runtime_.listeners->SetArchives(name, {});  // none in the spec (any more)
        }
        if (listen && outcome->network_active) {
          // The gateway address exists once the network is up; nodes boot after that.
          if (auto listening = runtime_.listeners->Ensure(name, gateway, runtime_.progress_port);
              !listening) {
            listener_error = listening.error().message;
          }
        }
        {
          // Nodes created anew under a name the lab had: their old Node is stale.
          const std::string primary = crds::PlanNodes(spec).front().name;
          auto& stale = StateOf(name).stale_nodes;
          for (const auto& node : outcome->created) {
            if (known_nodes.contains(node) && node != primary) stale.insert(node);
          }
        }
        progress = FollowProgress(name, spec, *secrets, *outcome);
        ReadKubernetes(name, spec, *secrets, PrimaryDone(spec, progress, before), progress,
                       api_ready, api_read, api_error, api_events);
      } else {
        infra_error = converged.error();
      }
    } else {
      secrets_error = secrets.error();
    }
  }

  // CacheReady: what the lab's nodes download packages and images through.
  auto cache_condition = [&](const crds::LabCluster& spec, std::int64_t generation) {
    const bool apt_on = spec.spec.cache.apt && runtime_.apt_cache && runtime_.apt_cache->Enabled();
    const bool images_on =
        spec.spec.cache.images && runtime_.registry_mirrors && runtime_.registry_mirrors->Enabled();
    if (infrastructure_.Driver() == "TEST" && (apt_on || images_on)) {
      return MakeCondition("CacheReady", "Unknown", "NoGuests",
                           "libvirt's test driver runs no guests: no cache is started", generation);
    }
    std::vector<std::string> parts;
    std::string problem;  // reason of the first cache that fails
    bool waiting = false;
    if (!spec.spec.cache.apt) {
      parts.push_back("spec.cache.apt is false: nodes fetch packages directly");
    } else if (!apt_on) {
      parts.push_back("the controller runs with --apt-cache off: nodes fetch packages directly");
    } else if (!apt_error.empty()) {
      problem = "AptCacheUnavailable";
      parts.push_back(apt_error + "; nodes created meanwhile fetch packages directly");
    } else if (apt_proxy.empty()) {
      waiting = true;
      parts.push_back("the apt cache starts on the lab's gateway once its network is up");
    } else {
      parts.push_back(fmt::format("apt through {} ({})", apt_proxy,
                                  runtime_.apt_cache->Managed()
                                      ? "apt-cacher-ng run by vmlab"
                                      : "an apt proxy given to the controller"));
      if (!apt_warm_note.empty()) parts.push_back(apt_warm_note);
    }
    if (!spec.spec.cache.images) {
      parts.push_back("spec.cache.images is false: nodes pull images from their registries");
    } else if (!images_on) {
      parts.push_back(
          "the controller runs with --image-cache off: nodes pull images from their registries");
    } else if (!mirror_error.empty()) {
      if (problem.empty()) problem = "ImageMirrorUnavailable";
      parts.push_back(mirror_error + "; nodes pull images from their registries");
    } else if (mirrors.empty()) {
      waiting = true;
      parts.push_back("the registry mirrors start on the lab's gateway once its network is up");
    } else {
      std::vector<std::string> served;
      for (const auto& [upstream, url] : mirrors) {
        served.push_back(fmt::format("{} through {}", upstream, url));
      }
      parts.push_back(fmt::format("images: {}", fmt::join(served, ", ")));
      if (!warm_note.empty()) parts.push_back(warm_note);
      for (const auto& [upstream, why] : runtime_.registry_mirrors->Problems()) {
        if (!mirrors.contains(upstream)) continue;
        if (problem.empty()) problem = "ImageMirrorUnavailable";
        parts.push_back(
            fmt::format("the mirror of {} does not serve ({}): its images come from "
                        "{} meanwhile",
                        upstream, why, upstream));
      }
    }
    if (!archive_note.empty()) parts.push_back(archive_note);
    if (spec.spec.cache.golden_image && golden_note.empty()) {
      parts.push_back(infrastructure_.Driver() == "TEST"
                          ? "golden images are built on real guests only"
                          : "golden images need the node listener (--progress-port) and a "
                            "controller that builds them");
    }
    if (!golden_note.empty()) parts.push_back(golden_note);
    if (problem.empty() && !golden_problem.empty()) problem = golden_problem;
    const std::string message = fmt::format("{}", fmt::join(parts, "; "));
    if (!problem.empty()) return MakeCondition("CacheReady", "False", problem, message, generation);
    if (waiting) {
      return MakeCondition("CacheReady", "Unknown", "NetworkNotActive", message, generation);
    }
    if (!apt_on && !images_on) {
      return MakeCondition("CacheReady", "True", "Disabled", message, generation);
    }
    return MakeCondition("CacheReady", "True", "Serving", message, generation);
  };
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
      if (!trusted_ca.empty()) r.trusted_ca = trusted_ca;
    }
    if (outcome) {
      r.observed_generation = generation;
      r.nodes = outcome->nodes;
      // Control planes kept although the spec dropped them stay in status, so
      // that they are known (never taken for orphans) until they may go.
      for (const auto& kept : outcome->refused) {
        const auto phase = scale.phases.find(kept);
        controller::NodeStatus node{kept,
                                    "control-plane",
                                    "",
                                    "running",
                                    phase == scale.phases.end() ? kKeptPhase : phase->second,
                                    false};
        if (before) {
          for (const auto& old : before->nodes) {
            if (old.name == kept) node.ip = old.ip;
          }
        }
        r.nodes.push_back(std::move(node));
      }
      for (const auto& held : outcome->held) {
        controller::NodeStatus node{held, "worker", "", "running", scale.phases[held], false};
        if (before) {
          for (const auto& old : before->nodes) {
            if (old.name == held) node.ip = old.ip;
          }
        }
        r.nodes.push_back(std::move(node));
      }
      for (const auto& [reason, message] : scale.events) {
        controller::AddEvent(r, reason.ends_with("Failed") ? "Warning" : "Normal", reason, message,
                             now);
      }
      for (const auto& [reason, message] : api_events) {
        controller::AddEvent(r, reason.ends_with("Failed") ? "Warning" : "Normal", reason, message,
                             now);
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
      } else if (!outcome->refused.empty() && !scale.cp_reason.empty()) {
        set(MakeCondition("InfrastructureReady", "False", scale.cp_reason, scale.cp_message,
                          generation),
            scale.cp_reason == "ControlPlaneScaleDownRefused" ? "Warning" : nullptr);
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
      } else if (!outcome->held.empty()) {
        set(MakeCondition("InfrastructureReady", "False", scale.reason, scale.message, generation),
            scale.reason == "DrainTimedOut" ? "Warning" : nullptr);
      } else if (golden.hold_new_nodes &&
                 std::any_of(outcome->nodes.begin(), outcome->nodes.end(),
                             [](const auto& n) { return n.domain_state == "missing"; })) {
        set(MakeCondition("InfrastructureReady", "False", "WaitingForGoldenImage",
                          fmt::format("{} of {} domains running; {}", running,
                                      outcome->nodes.size(), golden_note),
                          generation));
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
      std::set<std::string> not_planned(outcome->refused.begin(), outcome->refused.end());
      not_planned.insert(outcome->held.begin(), outcome->held.end());
      for (auto& node : r.nodes) {
        if (not_planned.contains(node.name)) continue;
        node.ready = node.domain_state == "running" && api_ready[node.name];
        const auto it = progress.find(node.name);
        if (it == progress.end()) {
          // No report since the controller started: what status said before
          // (unless the domain was created anew).
          if (before && std::find(outcome->created.begin(), outcome->created.end(), node.name) ==
                            outcome->created.end()) {
            for (const auto& old : before->nodes) {
              if (old.name == node.name) node.bootstrap_phase = old.bootstrap_phase;
            }
          }
          continue;
        }
        const auto& p = it->second;
        node.bootstrap_phase = p.state == "failed" ? fmt::format("{}: failed (exit {}, attempt {})",
                                                                 p.phase, p.exit_code, p.attempt)
                                                   : fmt::format("{}: {}", p.phase, p.state);
      }
      // Guests run on a real hypervisor, or are simulated; reports from them
      // count as running guests too.
      const bool guests_run =
          runtime_.simulator || infrastructure_.Driver() != "TEST" || !progress.empty();
      for (const auto& [type, role] :
           {std::pair{"ControlPlaneReady", "control-plane"}, std::pair{"WorkersReady", "worker"}}) {
        auto c = guests_run
                     ? RoleCondition(type, role, r.nodes, not_planned, progress, api_read,
                                     api_error, generation)
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

    if (desired->spec) {
      set(cache_condition(*desired->spec, generation), apt_error.empty() ? nullptr : "Warning");
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
  if (outcome && (!outcome->held.empty() || !outcome->refused.empty())) {
    // A drain under way or blocked: the next step soon.
    return controller::ReconcileResult{.requeue_after = std::chrono::seconds(5)};
  }
  if (outcome && !outcome->converged && !drift_left_alone) {
    // Still converging (one restart per pass, domains booting): look again soon.
    return controller::ReconcileResult{.requeue_after = std::chrono::seconds(2)};
  }
  return controller::ReconcileResult{};
}

}  // namespace vmlab::reconcilers
