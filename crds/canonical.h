// Canonical form of a LabCluster: every default written out, keys in a fixed
// order, addresses normalised. Two manifests that mean the same lab have the
// same canonical form and the same spec hash; the hash changes when and only
// when the spec's meaning does. The controller bumps metadata.generation on a
// new hash and stamps it on the objects it owns.
#pragma once

#include <string>
#include <string_view>

#include "crds/labcluster_types.h"

namespace vmlab::crds {

// The full object (apiVersion, kind, metadata, spec) as canonical YAML.
[[nodiscard]] std::string CanonicalYaml(const LabCluster& lab);

// sha256 of the canonical YAML of `spec` alone, as 64 lower-case hex digits.
[[nodiscard]] std::string SpecHash(const LabClusterSpec& spec);

// sha256 of `text` as 64 lower-case hex digits (the spec hash's digest, for
// other content identities: image archives, golden-image keys).
[[nodiscard]] std::string Sha256Hex(std::string_view text);

}  // namespace vmlab::crds
