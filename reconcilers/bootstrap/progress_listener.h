// The HTTP listeners of the lab's nodes: one per lab, bound to the lab
// network's gateway address (reachable from the lab's nodes, and on a real
// host from nowhere else), serving
//   POST /v1/progress       phase reports, into ProgressStore::Report (bodies
//                           over 16 KiB refused before they are read);
//   GET  /v1/archives       the lab's image archives, one per line:
//                           "ID SIZE IMAGE..." (text/plain);
//   GET  /v1/archives/ID    one archive's bytes.
// Every request carries a node's token (Authorization: Bearer TOKEN).
// cpprestsdk underneath, kept out of this header. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "crds/result.h"
#include "reconcilers/bootstrap/progress.h"
#include "reconcilers/cache/image_archives.h"

namespace vmlab::metrics {
class CacheMetrics;
}  // namespace vmlab::metrics

namespace vmlab::reconcilers::bootstrap {

inline constexpr int kDefaultProgressPort = 9441;

class ProgressListeners {
 public:
  // `metrics` may be null.
  explicit ProgressListeners(ProgressStore& store, metrics::CacheMetrics* metrics = nullptr);
  ~ProgressListeners();
  ProgressListeners(const ProgressListeners&) = delete;
  ProgressListeners& operator=(const ProgressListeners&) = delete;

  // Listens for `lab` on http://ADDRESS:PORT/v1/progress (again if the address changed).
  [[nodiscard]] Status Ensure(const std::string& lab, const std::string& address, int port);
  void Remove(const std::string& lab);
  // The image archives `lab`'s nodes may fetch.
  void SetArchives(const std::string& lab, std::vector<cache::ImageArchive> archives);

 private:
  struct Listener;
  struct Archives;
  ProgressStore& store_;
  metrics::CacheMetrics* const metrics_;
  std::shared_ptr<Archives> archives_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Listener>> listeners_;
};

// The URL a node of `lab` reports to.
[[nodiscard]] std::string ProgressUrl(const std::string& address, int port);

}  // namespace vmlab::reconcilers::bootstrap
