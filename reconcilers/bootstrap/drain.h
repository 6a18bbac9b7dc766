// One pass of a node's drain through the Kubernetes API, as `kubectl drain`
// followed by `kubectl delete node`: cordon the Node, ask the eviction API to
// evict every pod a drain moves (not DaemonSet pods, static pods' mirrors or
// finished pods; PodDisruptionBudgets decide, the API answers 429 when one
// does not allow it), and once none is left delete the Node. Called again on
// each reconcile until it says done; nothing here waits.
#pragma once

#include <string>

#include "crds/result.h"
#include "reconcilers/bootstrap/kubernetes_client.h"

namespace vmlab::reconcilers::bootstrap {

struct DrainStep {
  enum class State {
    kDraining,  // evictions under way: look again soon
    kBlocked,   // an eviction was refused (a PodDisruptionBudget); `message` says which
    kDone,      // the Node is gone: the VM may go
  };
  State state = State::kDraining;
  std::size_t evicted = 0;    // evictions the API accepted in this pass
  std::size_t remaining = 0;  // pods still to leave the node
  std::string message;        // kBlocked: the first refused pod and the API's reason
};

[[nodiscard]] Result<DrainStep> DrainNode(KubernetesClient& client, const std::string& node);

}  // namespace vmlab::reconcilers::bootstrap
