#include "reconcilers/cache/golden_images.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>

#include <cerrno>

#include "metrics/cache_metrics.h"
#include "reconcilers/cache/managed_process.h"
#include "reconcilers/infrastructure/lab_layout.h"

namespace vmlab::reconcilers::cache {
namespace fs = std::filesystem;

GoldenImages::GoldenImages(GoldenImagesOptions options, metrics::CacheMetrics* metrics)
    : options_(std::move(options)), metrics_(metrics) {}

std::optional<fs::path> GoldenImages::Ready(const std::string& key) const {
  const fs::path path = infrastructure::GoldenImagePath(options_.state_dir, key);
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path;
  return std::nullopt;
}

std::string GoldenImages::Claim(const std::string& key, const std::string& lab) {
  std::lock_guard guard(mutex_);
  const auto now = std::chrono::steady_clock::now();
  // A lab builds one key at a time: a claim on a key it no longer wants goes.
  std::erase_if(claims_,
                [&](const auto& claim) { return claim.second.lab == lab && claim.first != key; });
  if (auto held = claims_.find(key); held != claims_.end() && held->second.lab != lab &&
                                     now - held->second.since > options_.build_timeout) {
    spdlog::warn("golden image {}: lab {} took over the build lab {} did not finish",
                 key.substr(0, 12), lab, held->second.lab);
    claims_.erase(held);
  }
  auto [it, inserted] = claims_.try_emplace(key, Claimed{lab, now});
  if (inserted && metrics_) metrics_->CountRequests("golden", 0, 1);  // a build: a miss
  return it->second.lab;
}

std::chrono::steady_clock::duration GoldenImages::Building(const std::string& key,
                                                           const std::string& lab) const {
  std::lock_guard guard(mutex_);
  const auto it = claims_.find(key);
  if (it == claims_.end() || it->second.lab != lab) return {};
  return std::chrono::steady_clock::now() - it->second.since;
}

bool GoldenImages::TimedOut(const std::string& key, const std::string& lab) const {
  return Building(key, lab) > options_.build_timeout;
}

std::optional<std::string> GoldenImages::Failed(const std::string& key) const {
  std::lock_guard guard(mutex_);
  const auto it = failures_.find(key);
  if (it == failures_.end() ||
      std::chrono::steady_clock::now() - it->second.at > options_.retry_after) {
    return std::nullopt;
  }
  return it->second.why;
}

Status GoldenImages::Finish(const std::string& key, const std::string& lab,
                            const fs::path& builder_disk) {
  const fs::path image = infrastructure::GoldenImagePath(options_.state_dir, key);
  const fs::path part = fs::path(image).concat(".part");
  const fs::path output = fs::path(image).concat(".log");
  // A full copy (the base image's bytes and the builder's changes): nodes'
  // disks are backed by it alone, whatever becomes of the base image.
  auto spawned = SpawnService(
      {options_.qemu_img, "convert", "-O", "qcow2", builder_disk.string(), part.string()}, output);
  Status made;
  if (!spawned) {
    made = std::unexpected(spawned.error());
  } else {
    int status = 0;
    pid_t waited = -1;
    do {
      waited = waitpid(*spawned, &status, 0);
    } while (waited < 0 && errno == EINTR);
    std::error_code ec;
    if (waited != *spawned || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      made = MakeError(ErrorCode::kUnavailable,
                       fmt::format("qemu-img convert of {} failed ({}): {}", builder_disk.string(),
                                   DescribeExit(status), Tail(output, 400)));
    } else {
      fs::permissions(part,
                      fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                          fs::perms::others_read,
                      ec);
      fs::rename(part, image, ec);
      if (ec) {
        made = MakeError(ErrorCode::kUnavailable,
                         fmt::format("cannot move {} into place: {}", part.string(), ec.message()));
      }
    }
    fs::remove(output, ec);
    if (!made) fs::remove(part, ec);
  }
  if (!made) {
    Fail(key, lab, made.error().message);
    return made;
  }
  spdlog::info("golden image {} built by lab {}: {}", key.substr(0, 12), lab, image.string());
  if (metrics_) metrics_->CountGoldenBuild(true);
  std::lock_guard guard(mutex_);
  claims_.erase(key);
  failures_.erase(key);
  return {};
}

void GoldenImages::Fail(const std::string& key, const std::string& lab, std::string why) {
  spdlog::warn("golden image {} (lab {}): build failed: {}", key.substr(0, 12), lab, why);
  if (metrics_) metrics_->CountGoldenBuild(false);
  std::lock_guard guard(mutex_);
  if (auto it = claims_.find(key); it != claims_.end() && it->second.lab == lab) claims_.erase(it);
  failures_[key] = {std::move(why), std::chrono::steady_clock::now()};
}

void GoldenImages::Release(const std::string& lab) {
  std::lock_guard guard(mutex_);
  std::erase_if(claims_, [&](const auto& claim) { return claim.second.lab == lab; });
}

void GoldenImages::CountHits(int count) {
  if (metrics_ && count > 0)
    metrics_->CountRequests("golden", static_cast<std::uint64_t>(count), 0);
}

void GoldenImages::Poll() {
  if (!metrics_) return;
  double bytes = 0;
  double oldest = 0;
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (auto it = fs::directory_iterator(infrastructure::PoolPath(options_.state_dir), ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with("golden-") || !name.ends_with(".qcow2")) continue;
    bytes += static_cast<double>(it->file_size(ec));
    const auto age = std::chrono::duration<double>(now - it->last_write_time(ec)).count();
    oldest = std::max(oldest, age);
  }
  metrics_->SetStoredBytes("golden", bytes);
  metrics_->SetGoldenImageAge(oldest);
}

}  // namespace vmlab::reconcilers::cache
