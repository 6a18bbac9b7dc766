// Warming a registry mirror: fetching an image through it (the manifest —
// for a multi-platform index, linux/amd64's —, the config and every layer,
// the bodies discarded) so that the mirror stores it before nodes ask.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "crds/result.h"

namespace vmlab::reconcilers::cache {

// The User-Agent of warming requests: the mirrors' log tells them from nodes'.
inline constexpr const char* kWarmUserAgent = "vmlab-warm";

struct Warmed {
  int blobs = 0;
  std::uint64_t bytes = 0;
};

// The repository path and the tag or digest of a normalised reference, as
// the registry API names them: docker.io/calico/node:v3.28.1 -> (calico/node,
// v3.28.1); REGISTRY/NAME:TAG@DIGEST -> (NAME, DIGEST).
[[nodiscard]] std::pair<std::string, std::string> RepositoryAndReference(
    const std::string& reference);

// Fetches `reference` (normalised: REGISTRY/REPOSITORY:TAG or @DIGEST) from
// the mirror at `mirror_url` (http://HOST:PORT, serving REGISTRY's images).
[[nodiscard]] Result<Warmed> WarmImage(const std::string& mirror_url, const std::string& reference,
                                       std::chrono::seconds timeout);

}  // namespace vmlab::reconcilers::cache
