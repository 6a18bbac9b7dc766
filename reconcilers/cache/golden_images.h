// Golden base images (spec.cache.goldenImage): a base image with the
// download phases already applied, built once per key (GoldenImageKey: what
// goes into it) by a short-lived builder VM of the first lab that needs it,
// shared by every lab with the same key, and used as the backing file of
// their new nodes' disks. This class keeps the images (in vmlab's storage
// pool, golden-<key>.qcow2, made atomically from the builder's disk with
// qemu-img), which lab builds which key, and failed builds (retried after
// `retry_after`). The builder VM itself is planned by the infrastructure
// reconciler. Thread-safe.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "crds/result.h"

namespace vmlab::metrics {
class CacheMetrics;
}  // namespace vmlab::metrics

namespace vmlab::reconcilers::cache {

struct GoldenImagesOptions {
  std::filesystem::path state_dir;
  std::string qemu_img = "/usr/bin/qemu-img";
  std::chrono::seconds retry_after{1800};    // a failed key is built again after this
  std::chrono::seconds build_timeout{3600};  // a builder running longer has failed
};

class GoldenImages {
 public:
  // `metrics` may be null.
  GoldenImages(GoldenImagesOptions options, metrics::CacheMetrics* metrics);

  // The image of `key`, when it has been built.
  [[nodiscard]] std::optional<std::filesystem::path> Ready(const std::string& key) const;
  // Claims the build of `key` for `lab` unless another lab holds it (for
  // less than the build timeout); returns the lab that builds it. A claim of
  // `lab` on another key is dropped.
  std::string Claim(const std::string& key, const std::string& lab);
  // How long `lab`'s claim on `key` has been held (zero when it holds none).
  [[nodiscard]] std::chrono::steady_clock::duration Building(const std::string& key,
                                                             const std::string& lab) const;
  [[nodiscard]] bool TimedOut(const std::string& key, const std::string& lab) const;
  // Why the last build of `key` failed, while it is not retried yet.
  [[nodiscard]] std::optional<std::string> Failed(const std::string& key) const;
  // Makes the image of `key` from the powered-off builder's disk (a full
  // copy: qemu-img convert, then an atomic rename), and releases the claim.
  [[nodiscard]] Status Finish(const std::string& key, const std::string& lab,
                              const std::filesystem::path& builder_disk);
  void Fail(const std::string& key, const std::string& lab, std::string why);
  // Releases the claims of `lab` (deleted, or no longer wanting the image).
  void Release(const std::string& lab);
  // `count` nodes were created backed by a golden image (cache hits).
  void CountHits(int count);
  // Bytes and age of the images on disk, into the metrics.
  void Poll();

 private:
  struct Claimed {
    std::string lab;
    std::chrono::steady_clock::time_point since;
  };
  struct Failure {
    std::string why;
    std::chrono::steady_clock::time_point at;
  };
  const GoldenImagesOptions options_;
  metrics::CacheMetrics* const metrics_;
  mutable std::mutex mutex_;
  std::map<std::string, Claimed> claims_;  // key -> the lab building it
  std::map<std::string, Failure> failures_;
};

}  // namespace vmlab::reconcilers::cache
