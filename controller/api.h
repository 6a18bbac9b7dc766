// The read-only HTTP API (DESIGN.md "HTTP"), as a pure function of the
// controller's state: /healthz, /readyz, /metrics, /api/v1/labclusters[/NAME[/events]].
// Responses are JSON (errors too, shaped like a Kubernetes Status), except
// the probes and /metrics. Thread-safe as its inputs are.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "controller/desired_state.h"
#include "controller/status_store.h"

namespace vmlab::metrics {
class Registry;
}  // namespace vmlab::metrics

namespace vmlab::controller {

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

struct ApiContext {
  const DesiredState* desired = nullptr;
  const StatusStore* store = nullptr;
  const metrics::Registry* registry = nullptr;
  // Why the controller is not ready (initial scan, hypervisor), or nullopt when ready.
  std::function<std::optional<std::string>()> not_ready;
};

[[nodiscard]] ApiResponse HandleApiRequest(const ApiContext& context, std::string_view method,
                                           std::string_view path);

}  // namespace vmlab::controller
