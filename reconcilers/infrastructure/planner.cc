#include "reconcilers/infrastructure/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <regex>

#include "reconcilers/cache/cache_sets.h"
#include "reconcilers/infrastructure/identity.h"
#include "reconcilers/infrastructure/lab_layout.h"
#include "reconcilers/infrastructure/libvirt_xml.h"

namespace vmlab::reconcilers::infrastructure {

std::string_view ToString(ActionKind kind) {
  switch (kind) {
    case ActionKind::kEnsurePool:
      return "EnsurePool";
    case ActionKind::kDefineNetwork:
      return "DefineNetwork";
    case ActionKind::kStartNetwork:
      return "StartNetwork";
    case ActionKind::kCreateVolume:
      return "CreateVolume";
    case ActionKind::kCreateSeed:
      return "CreateSeed";
    case ActionKind::kDefineDomain:
      return "DefineDomain";
    case ActionKind::kStartDomain:
      return "StartDomain";
    case ActionKind::kRestartDomain:
      return "RestartDomain";
    case ActionKind::kDeleteDomain:
      return "DeleteDomain";
    case ActionKind::kDeleteVolume:
      return "DeleteVolume";
    case ActionKind::kDeleteNetwork:
      return "DeleteNetwork";
    case ActionKind::kAddNetworkHost:
      return "AddNetworkHost";
    case ActionKind::kRemoveNetworkHost:
      return "RemoveNetworkHost";
  }
  return "";
}

bool IsLabVolume(const std::string& lab, const std::string& volume) {
  if (!volume.starts_with(lab + "-")) return false;
  static const std::regex kNodeVolume(
      R"(((cp|worker)-[0-9]+-(root\.qcow2|data\.qcow2|seed\.iso))|golden-(root\.qcow2|seed\.iso))");
  return std::regex_match(volume.substr(lab.size() + 1), kNodeVolume);
}

bool IsLabNode(const std::string& lab, const std::string& name) {
  if (!name.starts_with(lab + "-")) return false;
  static const std::regex kNode(R"((cp|worker)-[0-9]+|golden)");
  return std::regex_match(name.substr(lab.size() + 1), kNode);
}

namespace {

void TearDown(const Observed& observed, bool keep_volumes, Plan& plan) {
  for (const auto& domain : observed.domains) {
    plan.actions.push_back({ActionKind::kDeleteDomain, domain.name, "", "", domain.name});
  }
  // Retain keeps the disks; seeds hold nothing of the user's and are rebuilt.
  for (const auto& volume : observed.volumes) {
    if (!keep_volumes || volume.ends_with("-seed.iso")) {
      plan.actions.push_back({ActionKind::kDeleteVolume, volume, "", "", ""});
    }
  }
  if (observed.network) {
    plan.actions.push_back({ActionKind::kDeleteNetwork, observed.network->name, "", "", ""});
  }
}

}  // namespace

Plan PlanInfrastructure(const std::string& lab_name, const Desired& desired,
                        const Observed& observed) {
  Plan plan;
  if (!desired.lab) {
    TearDown(observed, desired.retain_volumes, plan);
    return plan;
  }
  const crds::LabCluster& lab = *desired.lab;
  const bool remediate = lab.spec.drift_policy == crds::DriftPolicy::kRemediate;
  auto drift = [&](std::string kind, std::string object, std::string message, bool repairable) {
    plan.drift.push_back(
        {std::move(kind), std::move(object), std::move(message), repairable && remediate});
    return repairable && remediate;
  };

  plan.actions.push_back({ActionKind::kEnsurePool, kPoolName, "", "", ""});
  const std::string network = NetworkName(lab_name);
  const bool lab_existed = !observed.known_nodes.empty() || !observed.domains.empty();
  if (!observed.network) {
    if (!lab_existed || drift("NetworkMissing", network, "the lab's network is gone", true)) {
      plan.actions.push_back(
          {ActionKind::kDefineNetwork, network, RenderNetworkXml(lab, desired.spec_hash), "", ""});
      plan.actions.push_back({ActionKind::kStartNetwork, network, "", "", ""});
    }
  } else if (!observed.network->active) {
    if (!lab_existed || drift("NetworkInactive", network, "the lab's network is stopped", true)) {
      plan.actions.push_back({ActionKind::kStartNetwork, network, "", "", ""});
    }
  }
  if (observed.network) {
    // Nodes added or removed since the network was defined: its DHCP and DNS
    // entries follow, live, so a new node gets its address at first boot.
    // Each section on its own: a crash between the two updates leaves one.
    for (const crds::PlannedNode& node : crds::PlanNodes(lab)) {
      const bool dhcp = observed.network->dhcp_hosts.contains(node.name);
      const bool dns = observed.network->dns_hosts.contains(node.name);
      if (!dhcp || !dns) {
        plan.actions.push_back({ActionKind::kAddNetworkHost, network,
                                dhcp ? "" : RenderDhcpHostXml(lab, node),
                                dns ? "" : RenderDnsHostXml(lab, node), ""});
      }
    }
  }

  std::map<std::string, const DomainInfo*> domains;
  for (const auto& d : observed.domains) domains[d.name] = &d;
  std::set<std::string> planned_names;
  bool restart_planned = false;

  for (const crds::PlannedNode& node : crds::PlanNodes(lab)) {
    planned_names.insert(node.name);
    const bool control_plane = node.role == crds::NodeRole::kControlPlane;
    const NodeFiles files = FilesFor(desired.state_dir, lab, node);
    const int disk = control_plane ? lab.spec.control_plane.disk_gib : lab.spec.workers.disk_gib;
    const bool known = observed.known_nodes.contains(node.name);
    const auto domain = domains.find(node.name);
    const bool exists = domain != domains.end();

    if (desired.hold_new_nodes && !exists) continue;  // created from the golden image, later

    // A node that existed (its domain, or a domain known to be gone) has its
    // missing volumes reported as drift; a new node's are simply created.
    const bool existed = exists || known;
    auto volume = [&](const std::string& name, int gib, const std::string& backing) {
      if (name.empty() || observed.volumes.contains(name)) return;
      if (existed && !drift("VolumeMissing", name,
                            fmt::format("volume {} of {} is gone", name, node.name), true)) {
        return;
      }
      plan.actions.push_back({ActionKind::kCreateVolume, name,
                              RenderVolumeXml(name, gib, backing, backing.empty() ? "" : "qcow2"),
                              "", node.name});
    };
    volume(files.root_volume, disk,
           desired.root_backing.empty() ? lab.spec.image.path : desired.root_backing);
    volume(files.extra_volume, lab.spec.workers.extra_disk_gib, "");
    if (!observed.volumes.contains(files.seed_volume)) {
      if (!existed ||
          drift("VolumeMissing", files.seed_volume,
                fmt::format("seed {} of {} is gone", files.seed_volume, node.name), true)) {
        plan.actions.push_back({ActionKind::kCreateSeed, files.seed_volume, "", "", node.name});
      }
    } else if (!existed) {
      // A seed before its domain: left by a creation cut short, maybe in the
      // middle of its upload. It holds nothing of the user's: made anew.
      plan.actions.push_back({ActionKind::kDeleteVolume, files.seed_volume, "", "", node.name});
      plan.actions.push_back({ActionKind::kCreateSeed, files.seed_volume, "", "", node.name});
    }

    const std::string xml =
        RenderDomainXml(lab, node, HostConfigFor(desired.state_dir, lab, node, desired.domain_type),
                        desired.spec_hash);
    if (!exists) {
      if (known &&
          !drift("DomainMissing", node.name, fmt::format("domain {} is gone", node.name), true)) {
        continue;
      }
      plan.actions.push_back({ActionKind::kDefineDomain, node.name, xml, "", node.name});
      plan.actions.push_back({ActionKind::kStartDomain, node.name, "", "", node.name});
      continue;
    }

    const DomainInfo& observed_domain = *domain->second;
    const int cpus = control_plane ? lab.spec.control_plane.cpus : lab.spec.workers.cpus;
    const int memory =
        control_plane ? lab.spec.control_plane.memory_mib : lab.spec.workers.memory_mib;
    const bool resized = observed_domain.vcpus != cpus || observed_domain.memory_mib != memory;
    // Defined with the spec's resources but still running with others: a
    // resize whose restart never happened (vmlab stopped in between), or a
    // live change behind vmlab's back.
    const bool restart_pending =
        !resized && observed_domain.live_vcpus > 0 &&
        (observed_domain.live_vcpus != cpus || observed_domain.live_memory_mib != memory);
    // vmlab's own: it redefined the domain (the definition's hash is not the
    // one the domain runs with) or began its restart, and stopped before the end.
    const bool own_restart = observed.restarting.contains(node.name) ||
                             (observed_domain.owner && !observed_domain.live_spec_hash.empty() &&
                              observed_domain.live_spec_hash != observed_domain.owner->spec_hash);
    if (restart_pending) {
      const std::string what = fmt::format(
          "{} runs with {} vCPUs and {} MiB; its definition and the spec say {} and {} (a restart "
          "is pending)",
          node.name, observed_domain.live_vcpus, observed_domain.live_memory_mib, cpus, memory);
      if ((own_restart || drift("ResourceMismatch", node.name, what, true)) && !restart_planned) {
        restart_planned = true;
        plan.actions.push_back({ActionKind::kRestartDomain, node.name, "", "", node.name});
        continue;
      }
    }
    if (resized) {
      const bool spec_changed =
          !observed_domain.owner || observed_domain.owner->spec_hash != desired.spec_hash;
      const std::string what =
          fmt::format("{} has {} vCPUs and {} MiB; the spec says {} and {}", node.name,
                      observed_domain.vcpus, observed_domain.memory_mib, cpus, memory);
      const bool apply = spec_changed || drift("ResourceMismatch", node.name, what, true);
      if (apply && !restart_planned) {
        // One node per reconcile: the next one follows on the next pass.
        restart_planned = true;
        plan.actions.push_back({ActionKind::kDefineDomain, node.name, xml, "", node.name});
        plan.actions.push_back({ActionKind::kRestartDomain, node.name, "", "", node.name});
        continue;
      }
    } else if (observed_domain.owner && observed_domain.owner->spec_hash != desired.spec_hash) {
      // Same resources, newer spec: refresh the definition (metadata) in place.
      plan.actions.push_back({ActionKind::kDefineDomain, node.name, xml, "", node.name});
    }
    if (observed_domain.state == "crashed") {
      if (drift("DomainCrashed", node.name, fmt::format("domain {} crashed", node.name), true)) {
        plan.actions.push_back({ActionKind::kStartDomain, node.name, "", "", node.name});
      }
    } else if (observed_domain.state != "running" && observed_domain.state != "blocked") {
      // Defined but never seen running, or stopped by vmlab for a restart
      // that libvirt's going away cut short: finished now, not drift.
      const bool unfinished =
          (!known || observed.restarting.contains(node.name)) && observed_domain.state == "shutoff";
      if (unfinished ||
          drift("DomainStopped", node.name,
                fmt::format("domain {} is {}", node.name, observed_domain.state), true)) {
        plan.actions.push_back({ActionKind::kStartDomain, node.name, "", "", node.name});
      }
    }
  }

  // The golden image builder: its disk over the base image, its seed, its
  // domain; it powers itself off when done (not restarted: not drift).
  const crds::PlannedNode builder = GoldenBuilderNode(lab);
  if (desired.golden_builder) {
    planned_names.insert(builder.name);
    crds::LabCluster builder_lab = lab;
    builder_lab.spec.workers.extra_disk_gib = 0;
    const NodeFiles files = FilesFor(desired.state_dir, builder_lab, builder);
    const bool exists = domains.contains(builder.name);
    if (!exists) {
      // A root or seed without the builder's domain: left by a build cut
      // short (maybe for another image): made anew, never sealed half-done.
      if (observed.volumes.contains(files.root_volume)) {
        plan.actions.push_back(
            {ActionKind::kDeleteVolume, files.root_volume, "", "", builder.name});
      }
      const int disk = cache::GoldenDiskGiB(lab);  // no node's disk is smaller
      plan.actions.push_back(
          {ActionKind::kCreateVolume, files.root_volume,
           RenderVolumeXml(files.root_volume, disk, lab.spec.image.path, "qcow2"), "",
           builder.name});
      if (observed.volumes.contains(files.seed_volume)) {  // possibly cut short: made anew
        plan.actions.push_back(
            {ActionKind::kDeleteVolume, files.seed_volume, "", "", builder.name});
      }
      plan.actions.push_back({ActionKind::kCreateSeed, files.seed_volume, "", "", builder.name});
      plan.actions.push_back({ActionKind::kDefineDomain, builder.name,
                              RenderDomainXml(builder_lab, builder,
                                              HostConfigFor(desired.state_dir, builder_lab, builder,
                                                            desired.domain_type),
                                              desired.spec_hash),
                              "", builder.name});
      plan.actions.push_back({ActionKind::kStartDomain, builder.name, "", "", builder.name});
    }
  } else if (domains.contains(builder.name)) {
    plan.actions.push_back({ActionKind::kDeleteDomain, builder.name, "", "", builder.name});
  }

  // Owned domains the spec no longer has: scale down (highest indices are the
  // ones past the counts), or an orphan vmlab never planned.
  std::set<std::string> kept;  // refused or held nodes: domain, address and volumes stay
  for (const auto& d : observed.domains) {
    if (planned_names.contains(d.name) || d.name == builder.name) continue;
    const bool scaled_down = observed.known_nodes.contains(d.name);
    const bool control_plane = d.owner && d.owner->role == "control-plane";
    if (scaled_down && control_plane && !desired.removable_control_planes.contains(d.name)) {
      // Removing a control plane with its etcd member still in the cluster
      // costs etcd a member it still counts for quorum: refused.
      plan.refused.push_back(d.name);
      kept.insert(d.name);
      continue;
    }
    if (scaled_down && !control_plane && desired.held_workers.contains(d.name)) {
      plan.held.push_back(d.name);  // still draining
      kept.insert(d.name);
      continue;
    }
    if (scaled_down ||
        drift("OrphanDomain", d.name,
              fmt::format("domain {} carries lab {}'s ownership but is not in its spec", d.name,
                          lab_name),
              true)) {
      plan.actions.push_back({ActionKind::kDeleteDomain, d.name, "", "", d.name});
    }
  }
  std::sort(plan.refused.begin(), plan.refused.end());
  std::sort(plan.held.begin(), plan.held.end());
  if (observed.network) {
    // DNS entries of nodes (not the endpoint's, named after the lab) and every DHCP entry.
    std::map<std::string, std::string> hosts;
    for (const auto& [host, ip] : observed.network->dns_hosts) {
      if (host != lab.spec.control_plane.endpoint.host && IsLabNode(lab_name, host))
        hosts[host] = ip;
    }
    for (const auto& [host, ip] : observed.network->dhcp_hosts) hosts[host] = ip;
    for (const auto& [host, ip] : hosts) {
      if (planned_names.contains(host) || kept.contains(host)) continue;
      const auto address = crds::ParseIpv4Address(ip);
      if (!address) continue;
      const crds::PlannedNode gone{host, crds::NodeRole::kWorker, 0, address->value};
      const bool dhcp = observed.network->dhcp_hosts.contains(host);
      const bool dns = observed.network->dns_hosts.contains(host);
      plan.actions.push_back({ActionKind::kRemoveNetworkHost, network,
                              dhcp ? RenderDhcpHostXml(lab, gone) : "",
                              dns ? RenderDnsHostXml(lab, gone) : "", ""});
    }
  }
  for (const auto& volume : observed.volumes) {
    const auto node_end = volume.rfind('-');
    const std::string node = node_end == std::string::npos ? "" : volume.substr(0, node_end);
    if (planned_names.contains(node)) continue;
    // A node the spec no longer has: its volumes go once its domain is gone or going
    // (an orphan that is only reported keeps them).
    const bool domain_going = std::any_of(
        plan.actions.begin(), plan.actions.end(),
        [&](const Action& a) { return a.kind == ActionKind::kDeleteDomain && a.target == node; });
    if (!domains.contains(node) || domain_going) {
      plan.actions.push_back({ActionKind::kDeleteVolume, volume, "", "", node});
    }
  }
  return plan;
}

}  // namespace vmlab::reconcilers::infrastructure
