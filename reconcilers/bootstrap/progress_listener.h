// The HTTP listeners nodes report their progress to: one per lab, bound to the
// lab network's gateway address (reachable from the lab's nodes, and on a
// real host from nowhere else), serving POST /v1/progress into
// ProgressStore::Report. Bodies over 16 KiB are refused before they are read.
// cpprestsdk underneath, kept out of this header. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "crds/result.h"
#include "reconcilers/bootstrap/progress.h"

namespace vmlab::reconcilers::bootstrap {

inline constexpr int kDefaultProgressPort = 9441;

class ProgressListeners {
 public:
  explicit ProgressListeners(ProgressStore& store);
  ~ProgressListeners();
  ProgressListeners(const ProgressListeners&) = delete;
  ProgressListeners& operator=(const ProgressListeners&) = delete;

  // Listens for `lab` on http://ADDRESS:PORT/v1/progress (again if the address changed).
  [[nodiscard]] Status Ensure(const std::string& lab, const std::string& address, int port);
  void Remove(const std::string& lab);

 private:
  struct Listener;
  ProgressStore& store_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Listener>> listeners_;
};

// The URL a node of `lab` reports to.
[[nodiscard]] std::string ProgressUrl(const std::string& address, int port);

}  // namespace vmlab::reconcilers::bootstrap
