// The infrastructure planner: a PURE function from what a lab should be
// (desired) and what libvirt shows (observed) to the actions that converge it
// and the drift found on the way. No I/O; exhaustively table-tested.
//
// Rules: objects not owned by the lab are never touched (they are not even in
// the observation). Nodes are created in full (volumes, domain, start); scale
// down removes the nodes past the desired counts; a spec change of cpus or
// memory redefines and restarts one node per reconcile; a control plane the
// spec dropped is removed only when Desired says its etcd member is gone; drift (an object
// changed behind vmlab's back) is repaired under Remediate and only reported
// under Report. A lab whose desired state is gone is torn down, volumes kept
// under deletionPolicy Retain.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "crds/labcluster_types.h"
#include "reconcilers/infrastructure/hypervisor.h"

namespace vmlab::reconcilers::infrastructure {

enum class ActionKind {
  kEnsurePool,
  kDefineNetwork,
  kStartNetwork,
  kCreateVolume,  // target: volume name; xml: the volume
  kCreateSeed,    // target: the node's seed volume, built (NoCloud ISO) and uploaded when run
  kDefineDomain,  // target: domain name; xml: the domain
  kStartDomain,
  kRestartDomain,  // stop then start: applies a redefined cpus/memory
  kDeleteDomain,
  kDeleteVolume,
  kDeleteNetwork,
  kAddNetworkHost,     // target: network; xml: DHCP host; extra_xml: DNS host
  kRemoveNetworkHost,  // same, for a node the spec no longer has
};

[[nodiscard]] std::string_view ToString(ActionKind kind);

struct Action {
  ActionKind kind;
  std::string target;
  std::string xml;  // for define/create
  std::string extra_xml;
  std::string node;  // the node it belongs to, empty for lab-wide actions
};

struct DriftItem {
  std::string kind;    // DomainMissing, DomainStopped, DomainCrashed, ResourceMismatch,
                       // NetworkMissing, NetworkInactive, VolumeMissing, OrphanDomain
  std::string object;  // the libvirt object's name
  std::string message;
  bool remediated = false;  // an action in the plan repairs it
};

struct Observed {
  std::vector<DomainInfo> domains;     // owned by this lab
  std::optional<NetworkInfo> network;  // owned by this lab
  std::set<std::string> volumes;       // this lab's volumes in vmlab's pool
  std::set<std::string> known_nodes;   // nodes this lab had created before (from its status)
  std::set<std::string> restarting;    // domains vmlab stopped to restart and not started yet
};

struct Desired {
  const crds::LabCluster* lab = nullptr;  // null: the lab is to be deleted
  bool retain_volumes = false;            // on deletion: deletionPolicy Retain of the last spec
  std::string spec_hash;
  std::string state_dir;
  std::string domain_type = "qemu";
  // Control planes the spec dropped that may go: their etcd member is gone
  // (their Node is gone from the Kubernetes API). Others are kept and refused.
  std::set<std::string> removable_control_planes;
  // Workers the spec dropped that stay for now: their drain has not finished.
  std::set<std::string> held_workers;
  // spec.cache.goldenImage: the image new root disks are backed by (empty:
  // spec.image.path). Disks that exist keep theirs.
  std::string root_backing;
  // While the lab's golden image is being built (or waited for): nodes whose
  // domain does not exist are not created yet; existing ones are kept as usual.
  bool hold_new_nodes = false;
  // The golden image builder (GoldenBuilderNode) runs. Otherwise a builder
  // left over is removed with its volumes (no drift: it is vmlab's own).
  bool golden_builder = false;
};

struct Plan {
  std::vector<Action> actions;
  std::vector<DriftItem> drift;
  std::vector<std::string> refused;  // control planes kept although the spec dropped them
  std::vector<std::string> held;     // workers kept although the spec dropped them (draining)
};

[[nodiscard]] Plan PlanInfrastructure(const std::string& lab_name, const Desired& desired,
                                      const Observed& observed);

// True when `volume` is one of `lab`'s node volumes (<lab>-cp|worker-<i>-root|data|seed).
[[nodiscard]] bool IsLabVolume(const std::string& lab, const std::string& volume);
// True when `name` is one of `lab`'s node names (<lab>-cp|worker-<i>, <lab>-golden).
[[nodiscard]] bool IsLabNode(const std::string& lab, const std::string& name);

}  // namespace vmlab::reconcilers::infrastructure
