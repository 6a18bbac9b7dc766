// JSON forms of status pieces, shared by the status store (files) and the
// HTTP API. Includes cpprest's JSON header: include it from .cc files only.
#pragma once

#include <cpprest/json.h>

#include <vector>

#include "controller/status_store.h"

namespace vmlab::controller {

[[nodiscard]] web::json::value ToJson(const Condition& condition);
[[nodiscard]] web::json::value ToJson(const NodeStatus& node);
[[nodiscard]] web::json::value ToJson(const DriftStatus& drift);
[[nodiscard]] web::json::value ToJson(const Event& event);

template <typename T>
[[nodiscard]] web::json::value ArrayJson(const std::vector<T>& items) {
  web::json::value out = web::json::value::array();
  for (std::size_t i = 0; i < items.size(); ++i) out[i] = ToJson(items[i]);
  return out;
}

}  // namespace vmlab::controller
