#include "reconcilers/bootstrap/simulated_cluster.h"

#include <fmt/format.h>

#include <algorithm>

namespace vmlab::reconcilers::bootstrap {

class SimulatedClient final : public KubernetesClient {
 public:
  explicit SimulatedClient(std::shared_ptr<SimulatedCluster> cluster)
      : cluster_(std::move(cluster)) {}

  Result<std::vector<KubeNode>> ListNodes() override {
    std::lock_guard guard(cluster_->mutex_);
    if (auto ok = cluster_->Available(); !ok) return std::unexpected(ok.error());
    std::vector<KubeNode> nodes;
    for (const auto& [name, node] : cluster_->nodes_) nodes.push_back(node);
    return nodes;
  }

  Status SetUnschedulable(const std::string& node, bool unschedulable) override {
    std::lock_guard guard(cluster_->mutex_);
    if (auto ok = cluster_->Available(); !ok) return ok;
    const auto it = cluster_->nodes_.find(node);
    if (it == cluster_->nodes_.end()) {
      return MakeError(ErrorCode::kNotFound, fmt::format(R"(nodes "{}" not found)", node));
    }
    it->second.unschedulable = unschedulable;
    return {};
  }

  Result<std::vector<KubePod>> ListPods(const std::string& node) override {
    std::lock_guard guard(cluster_->mutex_);
    if (auto ok = cluster_->Available(); !ok) return std::unexpected(ok.error());
    std::vector<KubePod> pods;
    for (const auto& p : cluster_->pods_) {
      if (p.node == node) pods.push_back(p.pod);
    }
    return pods;
  }

  Result<Eviction> EvictPod(const KubePod& pod) override {
    std::lock_guard guard(cluster_->mutex_);
    if (auto ok = cluster_->Available(); !ok) return std::unexpected(ok.error());
    auto& pods = cluster_->pods_;
    const auto it = std::find_if(pods.begin(), pods.end(), [&](const SimulatedCluster::Pod& p) {
      return p.pod.ns == pod.ns && p.pod.name == pod.name;
    });
    if (it == pods.end()) return Eviction{EvictionOutcome::kGone, ""};
    if (cluster_->blocked_.contains(it->node)) {
      return Eviction{EvictionOutcome::kBlocked,
                      "Cannot evict pod as it would violate the pod's disruption budget."};
    }
    const bool deployment = !it->pod.daemon_set;
    pods.erase(it);
    if (deployment) cluster_->Schedule(pod.ns, "demo");
    return Eviction{EvictionOutcome::kEvicted, ""};
  }

  Status DeleteNode(const std::string& node) override {
    std::lock_guard guard(cluster_->mutex_);
    if (auto ok = cluster_->Available(); !ok) return ok;
    if (cluster_->nodes_.erase(node) > 0) {
      ++cluster_->node_deletions_;
      // The pod garbage collector removes the pods of a deleted Node.
      std::erase_if(cluster_->pods_,
                    [&](const SimulatedCluster::Pod& p) { return p.node == node; });
    }
    return {};
  }

  Status CreateBootstrapToken(const BootstrapTokenSecret& token) override {
    if (auto json = BootstrapTokenSecretJson(token); !json) return std::unexpected(json.error());
    std::lock_guard guard(cluster_->mutex_);
    if (auto ok = cluster_->Available(); !ok) return ok;
    cluster_->tokens_.try_emplace(token.token, token.expiration);
    return {};
  }

 private:
  std::shared_ptr<SimulatedCluster> cluster_;
};

class SimulatedEtcd final : public EtcdClient {
 public:
  explicit SimulatedEtcd(std::shared_ptr<SimulatedCluster> cluster)
      : cluster_(std::move(cluster)) {}

  Result<std::vector<EtcdMember>> ListMembers() override {
    std::lock_guard guard(cluster_->mutex_);
    if (auto ok = cluster_->Available(); !ok) return std::unexpected(ok.error());
    std::vector<EtcdMember> members;
    for (const auto& [name, member] : cluster_->members_) {
      members.push_back({member.id, name, {fmt::format("https://{}:2379", name)}, {}, false});
    }
    return members;
  }

  bool Healthy(const EtcdMember& member) override {
    std::lock_guard guard(cluster_->mutex_);
    const auto it = cluster_->members_.find(member.name);
    return cluster_->unavailable_.empty() && it != cluster_->members_.end() && it->second.healthy;
  }

  Status RemoveMember(std::uint64_t id) override {
    std::lock_guard guard(cluster_->mutex_);
    if (auto ok = cluster_->Available(); !ok) return ok;
    auto& members = cluster_->members_;
    const auto it = std::find_if(members.begin(), members.end(),
                                 [&](const auto& entry) { return entry.second.id == id; });
    if (it == members.end()) {
      return MakeError(ErrorCode::kFailedPrecondition, "etcdserver: member not found");
    }
    std::vector<EtcdMember> listed;
    std::set<std::string> healthy;
    for (const auto& [name, member] : members) {
      listed.push_back({member.id, name, {}, {}, false});
      if (member.healthy) healthy.insert(name);
    }
    if (!CheckMemberRemoval(listed, healthy, it->first).allowed) {
      return MakeError(ErrorCode::kFailedPrecondition, "etcdserver: unhealthy cluster");
    }
    members.erase(it);
    return {};
  }

 private:
  std::shared_ptr<SimulatedCluster> cluster_;
};

Status SimulatedCluster::Available() const {
  if (unavailable_.empty()) return {};
  return MakeError(ErrorCode::kUnavailable, unavailable_);
}

void SimulatedCluster::Schedule(const std::string& ns, const std::string& name) {
  // The schedulable Ready worker with the fewest pods (none: the pod stays Pending, unbound).
  std::string target;
  std::size_t fewest = SIZE_MAX;
  for (const auto& [node_name, node] : nodes_) {
    if (node.unschedulable || !node.ready || !node_name.contains("-worker-")) continue;
    const auto count = static_cast<std::size_t>(std::count_if(
        pods_.begin(), pods_.end(), [&](const Pod& p) { return p.node == node_name; }));
    if (count < fewest) {
      fewest = count;
      target = node_name;
    }
  }
  if (target.empty()) return;
  Pod pod;
  pod.pod.ns = ns;
  pod.pod.name = fmt::format("{}-{:05d}", name, ++pod_serial_);
  pod.node = target;
  pods_.push_back(std::move(pod));
}

void SimulatedCluster::Init(const std::string& primary, const std::string& token,
                            std::chrono::system_clock::time_point expiration) {
  std::lock_guard guard(mutex_);
  nodes_[primary] = KubeNode{primary, true, false};
  members_[primary] = Member{static_cast<std::uint64_t>(std::hash<std::string>{}(primary)), true};
  tokens_.try_emplace(token, expiration);
}

Status SimulatedCluster::Join(const std::string& node, bool worker, const std::string& token) {
  std::lock_guard guard(mutex_);
  const auto known = tokens_.find(token);
  if (known == tokens_.end() || known->second <= clock_.WallNow()) {
    const std::string id = token.substr(0, token.find('.'));
    return MakeError(ErrorCode::kPermissionDenied,
                     fmt::format("error execution phase preflight: couldn't validate the identity "
                                 "of the API Server: could not find a JWS signature in the "
                                 "cluster-info ConfigMap for token ID \"{}\"",
                                 id));
  }
  if (const auto it = nodes_.find(node); it != nodes_.end() && it->second.ready) {
    return MakeError(ErrorCode::kAlreadyExists,
                     fmt::format("a Node with name \"{}\" and status \"Ready\" already exists in "
                                 "the cluster. You must delete the existing Node or change the "
                                 "name of this new joining Node",
                                 node));
  }
  // A NotReady Node of that name is taken over; the pods its old kubelet
  // ran are gone with it (the Deployment's are placed again below).
  std::erase_if(pods_, [&](const Pod& p) { return p.node == node; });
  nodes_[node] = KubeNode{node, true, false};
  if (!worker) {
    members_[node] = Member{static_cast<std::uint64_t>(std::hash<std::string>{}(node)), true};
  }
  if (worker) {
    Pod proxy;
    proxy.pod = KubePod{"kube-system", "kube-proxy-" + node, true, false, false, false};
    proxy.node = node;
    pods_.push_back(std::move(proxy));
    for (int i = 0; i < 2; ++i) {
      Pod demo;
      demo.pod.ns = "default";
      demo.pod.name = fmt::format("demo-{:05d}", ++pod_serial_);
      demo.node = node;
      pods_.push_back(std::move(demo));
    }
  }
  return {};
}

void SimulatedCluster::NodeDown(const std::string& node) {
  std::lock_guard guard(mutex_);
  if (const auto it = nodes_.find(node); it != nodes_.end()) it->second.ready = false;
  if (const auto it = members_.find(node); it != members_.end()) it->second.healthy = false;
}

void SimulatedCluster::PutNode(const KubeNode& node) {
  std::lock_guard guard(mutex_);
  nodes_[node.name] = node;
}

void SimulatedCluster::BlockEvictions(std::set<std::string> nodes) {
  std::lock_guard guard(mutex_);
  blocked_ = std::move(nodes);
}

void SimulatedCluster::SetUnavailable(std::string message) {
  std::lock_guard guard(mutex_);
  unavailable_ = std::move(message);
}

std::unique_ptr<KubernetesClient> SimulatedCluster::Client() {
  return std::make_unique<SimulatedClient>(shared_from_this());
}

std::unique_ptr<EtcdClient> SimulatedCluster::Etcd() {
  return std::make_unique<SimulatedEtcd>(shared_from_this());
}

std::vector<std::string> SimulatedCluster::EtcdMembers() const {
  std::lock_guard guard(mutex_);
  std::vector<std::string> names;
  for (const auto& [name, member] : members_) names.push_back(name);
  return names;
}

std::vector<KubeNode> SimulatedCluster::Nodes() const {
  std::lock_guard guard(mutex_);
  std::vector<KubeNode> nodes;
  for (const auto& [name, node] : nodes_) nodes.push_back(node);
  return nodes;
}

std::vector<std::string> SimulatedCluster::PodsOn(const std::string& node) const {
  std::lock_guard guard(mutex_);
  std::vector<std::string> names;
  for (const auto& p : pods_) {
    if (p.node == node) names.push_back(p.pod.ns + "/" + p.pod.name);
  }
  return names;
}

std::set<std::string> SimulatedCluster::Tokens() const {
  std::lock_guard guard(mutex_);
  std::set<std::string> ids;
  for (const auto& [token, expiration] : tokens_) {
    if (expiration > clock_.WallNow()) ids.insert(token.substr(0, token.find('.')));
  }
  return ids;
}

int SimulatedCluster::NodeDeletions() const {
  std::lock_guard guard(mutex_);
  return node_deletions_;
}

}  // namespace vmlab::reconcilers::bootstrap
