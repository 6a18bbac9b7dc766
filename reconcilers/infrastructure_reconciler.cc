#include "reconcilers/infrastructure_reconciler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "controller/logging.h"
#include "reconcilers/infrastructure/identity.h"
#include "reconcilers/infrastructure/lab_layout.h"
#include "reconcilers/infrastructure/preflight.h"
#include "reconcilers/infrastructure/seed.h"

namespace vmlab::reconcilers {

using infrastructure::Action;
using infrastructure::ActionKind;

InfrastructureReconciler::InfrastructureReconciler(infrastructure::Hypervisor& hypervisor,
                                                   std::string state_dir, int parallelism)
    : hypervisor_(hypervisor), state_dir_(std::move(state_dir)), parallelism_(parallelism) {}

InfrastructureReconciler::DomainTypeChoice InfrastructureReconciler::DomainType() {
  std::lock_guard guard(domain_type_mutex_);
  if (domain_type_) return *domain_type_;
  if (hypervisor_.Driver() == "TEST") {
    domain_type_ = {"qemu", "libvirt's test driver runs no guests"};
    return *domain_type_;
  }
  auto caps = hypervisor_.DomainCapabilities("kvm");
  if (!caps) {
    if (caps.error().code == ErrorCode::kUnavailable) {
      return {"qemu", "not connected to libvirt yet"};  // asked again next time
    }
    domain_type_ = {"qemu", "KVM is not available (" + caps.error().message + "); using TCG"};
    return *domain_type_;
  }
  const auto verdict = infrastructure::ParseKvmVerdict(*caps);
  domain_type_ = verdict.usable ? DomainTypeChoice{"kvm", verdict.reason}
                                : DomainTypeChoice{"qemu", verdict.reason + "; using TCG"};
  return *domain_type_;
}

Result<infrastructure::Observed> InfrastructureReconciler::Observe(const std::string& lab,
                                                                   bool pool_needed) {
  infrastructure::Observed observed;
  // Every node of the lab is named <lab>-...; other domains are not even inspected.
  auto domains = hypervisor_.ListDomains(lab + "-");
  if (!domains) return std::unexpected(domains.error());
  for (auto& d : *domains) {
    if (d.owner && d.owner->lab == lab) observed.domains.push_back(std::move(d));
  }
  auto networks = hypervisor_.ListNetworks(infrastructure::NetworkName(lab));
  if (!networks) return std::unexpected(networks.error());
  for (auto& n : *networks) {
    if (n.owner && n.owner->lab == lab && n.name == infrastructure::NetworkName(lab)) {
      observed.network = std::move(n);
    }
  }
  if (pool_needed) {
    if (auto pool = hypervisor_.EnsurePool(infrastructure::kPoolName,
                                           infrastructure::PoolPath(state_dir_).string());
        !pool) {
      return std::unexpected(pool.error());
    }
  }
  auto volumes = hypervisor_.ListVolumes(infrastructure::kPoolName, lab + "-");
  if (volumes) {
    for (const auto& v : *volumes) {
      if (infrastructure::IsLabVolume(lab, v.name)) observed.volumes.insert(v.name);
    }
  } else if (volumes.error().code != ErrorCode::kNotFound) {
    return std::unexpected(volumes.error());
  }
  return observed;
}

Status InfrastructureReconciler::CreateSeed(const crds::LabCluster& spec, const std::string& node,
                                            const std::string& volume,
                                            const UserDataFn& user_data) {
  auto nodes = crds::PlanNodes(spec);
  nodes.push_back(infrastructure::GoldenBuilderNode(spec));
  const auto it = std::find_if(nodes.begin(), nodes.end(),
                               [&](const crds::PlannedNode& n) { return n.name == node; });
  if (it == nodes.end()) {
    return std::unexpected(Error{ErrorCode::kInternal, fmt::format("no planned node {}", node)});
  }
  if (!user_data) {
    return std::unexpected(Error{ErrorCode::kInternal, "no user-data for the seed of " + node});
  }
  auto text = user_data(*it);
  if (!text) return std::unexpected(text.error());
  const auto iso =
      infrastructure::BuildSeedIso(infrastructure::RenderSeedFiles(spec, *it, std::move(*text)));
  if (!iso) return std::unexpected(iso.error());
  return hypervisor_.CreateVolume(infrastructure::kPoolName,
                                  infrastructure::RenderRawVolumeXml(volume, iso->size()), *iso);
}

Status InfrastructureReconciler::Run(const Action& action, const crds::LabCluster* spec,
                                     const UserDataFn& user_data) {
  switch (action.kind) {
    case ActionKind::kEnsurePool: {
      const auto pool = infrastructure::PoolPath(state_dir_);
      auto made = hypervisor_.EnsurePool(action.target, pool.string());
      // A pool an older vmlab made 0700 is opened up to qemu's user (0711).
      std::error_code error;
      if (made && std::filesystem::is_directory(pool, error)) {
        std::filesystem::permissions(pool, infrastructure::kQemuTraversable, error);
      }
      return made;
    }
    case ActionKind::kDefineNetwork:
      return hypervisor_.DefineNetwork(action.xml);
    case ActionKind::kStartNetwork:
      return hypervisor_.StartNetwork(action.target);
    case ActionKind::kCreateVolume:
      return hypervisor_.CreateVolume(infrastructure::kPoolName, action.xml);
    case ActionKind::kCreateSeed:
      if (!spec) return std::unexpected(Error{ErrorCode::kInternal, "a seed needs the lab's spec"});
      return CreateSeed(*spec, action.node, action.target, user_data);
    case ActionKind::kDefineDomain: {
      // The serial console is logged into the state dir; qemu needs the folder.
      std::error_code error;
      std::filesystem::create_directories(infrastructure::ConsoleDir(state_dir_), error);
      if (!error) {
        std::filesystem::permissions(infrastructure::ConsoleDir(state_dir_),
                                     infrastructure::kQemuTraversable, error);
      }
      if (error) {
        return std::unexpected(
            Error{ErrorCode::kFailedPrecondition,
                  fmt::format("cannot create {}: {}",
                              infrastructure::ConsoleDir(state_dir_).string(), error.message())});
      }
      return hypervisor_.DefineDomain(action.xml);
    }
    case ActionKind::kStartDomain:
    case ActionKind::kRestartDomain: {
      if (action.kind == ActionKind::kRestartDomain) {
        {
          std::lock_guard guard(restarting_mutex_);
          restarting_.insert(action.target);
        }
        if (auto stopped = hypervisor_.StopDomain(action.target); !stopped) return stopped;
      }
      auto started = hypervisor_.StartDomain(action.target);
      if (started) {
        std::lock_guard guard(restarting_mutex_);
        restarting_.erase(action.target);
      }
      return started;
    }
    case ActionKind::kDeleteDomain: {
      if (auto deleted = hypervisor_.DeleteDomain(action.target); !deleted) return deleted;
      {
        std::lock_guard guard(restarting_mutex_);
        restarting_.erase(action.target);
      }
      // Its serial console log goes with it (a node of that name later starts a new one).
      std::error_code ignored;
      std::filesystem::remove(infrastructure::ConsoleDir(state_dir_) / (action.target + ".log"),
                              ignored);
      return {};
    }
    case ActionKind::kDeleteVolume:
      return hypervisor_.DeleteVolume(infrastructure::kPoolName, action.target);
    case ActionKind::kDeleteNetwork:
      return hypervisor_.DeleteNetwork(action.target);
    case ActionKind::kAddNetworkHost:
      return hypervisor_.UpdateNetworkHost(action.target, true, action.xml, action.extra_xml);
    case ActionKind::kRemoveNetworkHost:
      return hypervisor_.UpdateNetworkHost(action.target, false, action.xml, action.extra_xml);
  }
  return {};
}

Result<InfrastructureOutcome> InfrastructureReconciler::Converge(
    const std::string& lab, const crds::LabCluster* spec, const std::string& spec_hash,
    bool retain_volumes, const std::set<std::string>& known_nodes, const UserDataFn& user_data,
    const std::set<std::string>& removable_control_planes,
    const std::set<std::string>& held_workers, const GoldenOptions& golden) {
  const auto started = std::chrono::steady_clock::now();
  auto since = [&started] {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
        .count();
  };
  auto observed = Observe(lab, spec != nullptr);
  if (!observed) return std::unexpected(observed.error());
  observed->known_nodes = known_nodes;
  {
    std::lock_guard guard(restarting_mutex_);
    for (const auto& d : observed->domains) {
      if (!restarting_.contains(d.name)) continue;
      if (d.state == "running") {
        restarting_.erase(d.name);  // started after all (a lost reply): done
      } else {
        observed->restarting.insert(d.name);
      }
    }
  }
  const infrastructure::Desired desired{
      spec,          retain_volumes,      spec_hash,
      state_dir_,    DomainType().type,   removable_control_planes,
      held_workers,  golden.root_backing, golden.hold_new_nodes,
      golden.builder};
  const infrastructure::Plan plan = infrastructure::PlanInfrastructure(lab, desired, *observed);

  InfrastructureOutcome outcome;
  outcome.drift = plan.drift;
  outcome.refused = plan.refused;
  outcome.held = plan.held;

  // Before anything new is created: checks that would otherwise leave the lab half-built.
  const bool creates = std::any_of(plan.actions.begin(), plan.actions.end(), [&](const Action& a) {
    return a.kind == ActionKind::kDefineNetwork ||
           (a.kind == ActionKind::kDefineDomain &&
            std::none_of(observed->domains.begin(), observed->domains.end(),
                         [&](const auto& d) { return d.name == a.target; }));
  });
  if (spec && creates) {
    // libvirt's test driver simulates a fixed 16-CPU, 3 GiB host and no files:
    // capacity and the base image are checked only on a real hypervisor.
    const bool real_host = hypervisor_.Driver() != "TEST";
    infrastructure::PreflightInput input;
    input.lab = spec;
    if (real_host) {
      auto host = hypervisor_.Host();
      if (!host) return std::unexpected(host.error());
      input.host = *host;
      input.check_base_image = true;
    }
    auto networks = hypervisor_.ListNetworks();
    if (!networks) return std::unexpected(networks.error());
    for (auto& n : *networks) {
      if (!(n.owner && n.owner->lab == lab)) input.other_networks.push_back(std::move(n));
    }
    if (!observed->network) input.routes = infrastructure::ReadHostRoutes();
    if (auto problem = infrastructure::CheckPreflight(input)) {
      outcome.preflight_error = *problem;
      for (const auto& node : crds::PlanNodes(*spec)) {
        const auto it = std::find_if(observed->domains.begin(), observed->domains.end(),
                                     [&](const auto& d) { return d.name == node.name; });
        outcome.nodes.push_back(
            {node.name, std::string(crds::ToString(node.role)),
             crds::Ipv4Address{static_cast<std::uint32_t>(node.address)}.ToString(),
             it == observed->domains.end() ? "missing" : it->state, "", false});
      }
      outcome.network_active = observed->network && observed->network->active;
      return outcome;
    }
  }
  std::mutex mutex;
  auto run = [&](const Action& action) {
    auto done = Run(action, spec, user_data);
    std::lock_guard guard(mutex);
    if (!done) {
      outcome.failures.push_back(fmt::format("{} {}: {}", infrastructure::ToString(action.kind),
                                             action.target, done.error().message));
      return false;
    }
    if (action.kind == ActionKind::kDefineDomain &&
        !std::any_of(observed->domains.begin(), observed->domains.end(),
                     [&](const auto& d) { return d.name == action.target; })) {
      outcome.created.push_back(action.target);
    }
    if (action.kind == ActionKind::kDeleteDomain) outcome.deleted.push_back(action.target);
    if (action.kind == ActionKind::kRestartDomain) outcome.restarted.push_back(action.target);
    return true;
  };

  const double planned_ms = since();
  // 1. Lab-wide set-up, in order.
  std::map<std::string, std::vector<const Action*>> by_node;
  std::vector<const Action*> last;
  bool setup_ok = true;
  for (const Action& action : plan.actions) {
    const bool lab_wide_setup =
        action.node.empty() &&
        (action.kind == ActionKind::kEnsurePool || action.kind == ActionKind::kDefineNetwork ||
         action.kind == ActionKind::kStartNetwork || action.kind == ActionKind::kAddNetworkHost);
    if (lab_wide_setup) {
      setup_ok = run(action) && setup_ok;
    } else if (action.node.empty()) {
      last.push_back(&action);
    } else {
      by_node[action.node].push_back(&action);
    }
  }
  // 2. Each node's actions in order, nodes side by side (bounded).
  if (setup_ok) {
    std::vector<const std::vector<const Action*>*> groups;
    for (const auto& [node, actions] : by_node) groups.push_back(&actions);
    std::atomic<std::size_t> next{0};
    // Helper threads log with the reconcile's fields (this thread has them already).
    const auto log_fields = controller::LogFields::Current();
    const auto caller = std::this_thread::get_id();
    auto worker = [&] {
      const controller::LogFields fields(
          std::this_thread::get_id() == caller ? std::vector<controller::LogField>{} : log_fields);
      for (std::size_t i = next++; i < groups.size(); i = next++) {
        for (const Action* action : *groups[i]) {
          if (!run(*action)) break;  // later steps of this node need the earlier ones
        }
      }
    };
    std::vector<std::thread> threads;
    const std::size_t count =
        std::min<std::size_t>(groups.size(), static_cast<std::size_t>(parallelism_));
    for (std::size_t i = 1; i < count; ++i) threads.emplace_back(worker);
    if (count > 0) worker();
    for (auto& t : threads) t.join();
    // 3. Lab-wide teardown, after the domains that used it are gone.
    for (const Action* action : last) run(*action);
  }
  if (plan.actions.size() > 1) {
    spdlog::debug(
        "lab {}: observed and planned in {:.1f} ms; {} actions ({} nodes side by side) "
        "done in {:.1f} ms",
        lab, planned_ms, plan.actions.size(), by_node.size(), since() - planned_ms);
  }

  // What libvirt shows now (unchanged when nothing but the pool check ran).
  const bool acted = std::any_of(plan.actions.begin(), plan.actions.end(),
                                 [](const Action& a) { return a.kind != ActionKind::kEnsurePool; });
  auto after = acted ? Observe(lab, false) : observed;
  if (!after) return std::unexpected(after.error());
  std::map<std::string, std::string> states;
  for (const auto& d : after->domains) states[d.name] = d.state;
  outcome.network_active = after->network && after->network->active;
  if (spec) {
    const auto builder = states.find(infrastructure::GoldenBuilderNode(*spec).name);
    outcome.builder_state = builder == states.end() ? "missing" : builder->second;
  }
  bool all_running = outcome.network_active;
  if (spec) {
    for (const auto& node : crds::PlanNodes(*spec)) {
      const auto it = states.find(node.name);
      const std::string state = it == states.end() ? "missing" : it->second;
      all_running = all_running && state == "running";
      outcome.nodes.push_back(
          {node.name, std::string(crds::ToString(node.role)),
           crds::Ipv4Address{static_cast<std::uint32_t>(node.address)}.ToString(), state, "",
           false});
    }
  }
  outcome.converged =
      spec && all_running && outcome.failures.empty() &&
      after->domains.size() == outcome.nodes.size() + outcome.refused.size() + outcome.held.size();
  outcome.nothing_left =
      after->domains.empty() && !after->network && (retain_volumes || after->volumes.empty());
  return outcome;
}

}  // namespace vmlab::reconcilers
