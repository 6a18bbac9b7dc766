// FakeDesiredState: a DesiredState a test fills by hand.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controller/desired_state.h"

namespace vmlab::testing_support {

class FakeDesiredState final : public controller::DesiredState {
 public:
  [[nodiscard]] std::optional<controller::DesiredLab> Get(const std::string& name) const override {
    auto it = labs.find(name);
    if (it == labs.end()) return std::nullopt;
    return it->second;
  }
  [[nodiscard]] std::vector<std::string> Names() const override {
    std::vector<std::string> names;
    for (const auto& [name, lab] : labs) names.push_back(name);
    return names;
  }

  std::map<std::string, controller::DesiredLab> labs;
};

}  // namespace vmlab::testing_support
