// DesiredState: what the manifests ask for, per lab name, as the reconciler
// and the API read it. Implemented by ManifestSource.
//
// A lab keeps its last good spec while its manifest is invalid (spec_valid is
// false and says why), and stays while its manifest is missing until
// deletion_at passes (then Get returns nullopt). Thread-safe reads.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "controller/clock.h"
#include "crds/labcluster_types.h"

namespace vmlab::controller {

struct DesiredLab {
  std::string name;
  std::optional<crds::LabCluster> spec;  // the last good spec; nullopt if it never had one
  std::string spec_hash;                 // SpecHash of `spec`
  std::string source;                    // the file that defines (or last defined) the lab
  bool spec_valid = false;
  std::string invalid_reason;           // CamelCase reason when !spec_valid
  std::string invalid_message;          // the validator's message(s) when !spec_valid
  std::optional<WallTime> deletion_at;  // the manifest is gone: deleted then unless it returns

  friend bool operator==(const DesiredLab& a, const DesiredLab& b) {
    return a.name == b.name && a.spec_hash == b.spec_hash &&
           a.spec.has_value() == b.spec.has_value() && a.source == b.source &&
           a.spec_valid == b.spec_valid && a.invalid_reason == b.invalid_reason &&
           a.invalid_message == b.invalid_message && a.deletion_at == b.deletion_at;
  }
};

class DesiredState {
 public:
  virtual ~DesiredState() = default;
  [[nodiscard]] virtual std::optional<DesiredLab> Get(const std::string& name) const = 0;
  [[nodiscard]] virtual std::vector<std::string> Names() const = 0;
};

}  // namespace vmlab::controller
