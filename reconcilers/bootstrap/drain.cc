#include "reconcilers/bootstrap/drain.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace vmlab::reconcilers::bootstrap {
namespace {

// The pods a drain has to move off the node.
Result<std::vector<KubePod>> Movable(KubernetesClient& client, const std::string& node) {
  auto pods = client.ListPods(node);
  if (!pods) return std::unexpected(pods.error());
  std::erase_if(*pods, [](const KubePod& p) { return p.daemon_set || p.mirror || p.finished; });
  return pods;
}

}  // namespace

Result<DrainStep> DrainNode(KubernetesClient& client, const std::string& node) {
  DrainStep step;
  auto nodes = client.ListNodes();
  if (!nodes) return std::unexpected(nodes.error());
  const auto it =
      std::find_if(nodes->begin(), nodes->end(), [&](const KubeNode& n) { return n.name == node; });
  if (it == nodes->end()) {
    step.state = DrainStep::State::kDone;
    return step;
  }
  if (!it->unschedulable) {
    if (auto cordoned = client.SetUnschedulable(node, true); !cordoned) {
      if (cordoned.error().code == ErrorCode::kNotFound) {
        step.state = DrainStep::State::kDone;
        return step;
      }
      return std::unexpected(cordoned.error());
    }
  }
  auto pods = Movable(client, node);
  if (!pods) return std::unexpected(pods.error());
  for (const auto& pod : *pods) {
    if (pod.terminating) continue;  // evicted before, still shutting down
    auto eviction = client.EvictPod(pod);
    if (!eviction) return std::unexpected(eviction.error());
    if (eviction->outcome == EvictionOutcome::kEvicted) ++step.evicted;
    if (eviction->outcome == EvictionOutcome::kBlocked && step.message.empty()) {
      step.message = fmt::format("pod {}/{}: {}", pod.ns, pod.name, eviction->message);
    }
  }
  if (step.evicted > 0) {
    // Pods the API removed at once need no second pass.
    pods = Movable(client, node);
    if (!pods) return std::unexpected(pods.error());
  }
  step.remaining = pods->size();
  if (!step.message.empty()) {
    step.state = DrainStep::State::kBlocked;
    return step;
  }
  if (step.remaining > 0) return step;
  if (auto deleted = client.DeleteNode(node); !deleted) return std::unexpected(deleted.error());
  step.state = DrainStep::State::kDone;
  return step;
}

}  // namespace vmlab::reconcilers::bootstrap
