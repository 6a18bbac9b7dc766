// The Kubernetes API of a lab whose guests are simulated (`--simulate-guests`),
// kept in memory: the primary's `kubeadm init` registers its Node and the
// initial bootstrap token, each join checks its token (known, not expired) the
// way kubeadm's discovery does and registers the Node; a worker that joins
// gets two pods of a demo Deployment and a kube-proxy DaemonSet pod. Evicted
// Deployment pods are scheduled again on another schedulable worker; the pods
// of a node named in `BlockEvictions` are protected by a PodDisruptionBudget
// (HTTP 429). A node whose guest stops turns NotReady and its Node stays, as
// in a real cluster. Client() answers through the same KubernetesClient
// interface as the real API, so drains and token rotation run the same code.
// Its etcd has a member per control plane (added by init and by control-plane
// joins, unhealthy while the node is down) and refuses a removal that would
// cost quorum, as etcd's strict reconfiguration check does; Etcd() answers
// through the same EtcdClient interface as the real one.
// A demo and test tool; no claim about Kubernetes rests on it. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "controller/clock.h"
#include "reconcilers/bootstrap/etcd_client.h"
#include "reconcilers/bootstrap/kubernetes_client.h"

namespace vmlab::reconcilers::bootstrap {

class SimulatedCluster : public std::enable_shared_from_this<SimulatedCluster> {
 public:
  explicit SimulatedCluster(controller::Clock& clock) : clock_(clock) {}

  // `kubeadm init` on `primary`: its Node, and `token` valid until `expiration`.
  void Init(const std::string& primary, const std::string& token,
            std::chrono::system_clock::time_point expiration);
  // `kubeadm join` of `node` with `token`: an error (kubeadm's words) when
  // the token is unknown or expired, or a Ready Node of that name exists.
  [[nodiscard]] Status Join(const std::string& node, bool worker, const std::string& token);
  // The node's kubelet stopped (its guest is gone): the Node turns NotReady.
  void NodeDown(const std::string& node);
  // Pods on these nodes are covered by a PodDisruptionBudget that allows no disruption.
  void BlockEvictions(std::set<std::string> nodes);
  // Adds or replaces a Node as it is (tests).
  void PutNode(const KubeNode& node);
  // Every call fails with kUnavailable and `message` while it is not empty.
  void SetUnavailable(std::string message);

  [[nodiscard]] std::unique_ptr<KubernetesClient> Client();
  [[nodiscard]] std::unique_ptr<EtcdClient> Etcd();
  [[nodiscard]] std::vector<std::string> EtcdMembers() const;  // names

  // What the API holds, for tests and status.
  [[nodiscard]] std::vector<KubeNode> Nodes() const;
  [[nodiscard]] std::vector<std::string> PodsOn(const std::string& node) const;
  [[nodiscard]] std::set<std::string> Tokens() const;  // token ids not expired
  [[nodiscard]] int NodeDeletions() const;

 private:
  friend class SimulatedClient;
  friend class SimulatedEtcd;
  struct Member {
    std::uint64_t id = 0;
    bool healthy = true;
  };
  struct Pod {
    KubePod pod;
    std::string node;
  };
  [[nodiscard]] Status Available() const;                         // mutex_ held
  void Schedule(const std::string& ns, const std::string& name);  // mutex_ held

  controller::Clock& clock_;
  mutable std::mutex mutex_;
  std::map<std::string, KubeNode> nodes_;
  std::vector<Pod> pods_;
  std::map<std::string, std::chrono::system_clock::time_point> tokens_;  // token -> expiration
  std::set<std::string> blocked_;
  std::map<std::string, Member> members_;  // etcd, by member (node) name
  std::string unavailable_;
  int node_deletions_ = 0;
  int pod_serial_ = 0;
};

}  // namespace vmlab::reconcilers::bootstrap
