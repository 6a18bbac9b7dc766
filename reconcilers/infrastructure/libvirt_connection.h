// LibvirtConnection: the controller's connection to libvirt (RAII over
// virConnectPtr). Ensure() opens it or checks it is alive, and reports the
// outcome in vmlab_libvirt_connected; libvirt's own error printing goes to
// vmlab's log instead of stderr. libvirt's default event loop runs on a
// thread of its own, so lifecycle events arrive; on a daemon connection
// keepalive is on (5 s x 3), so a dead daemon shows as disconnected.
// One connection serves every thread (libvirt's API is thread-safe).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "crds/result.h"

namespace vmlab::metrics {
class HypervisorMetrics;
}  // namespace vmlab::metrics

namespace vmlab::reconcilers::infrastructure {

class LibvirtConnection {
 public:
  // `metrics` may be null.
  LibvirtConnection(std::string uri, metrics::HypervisorMetrics* metrics);
  ~LibvirtConnection();
  LibvirtConnection(const LibvirtConnection&) = delete;
  LibvirtConnection& operator=(const LibvirtConnection&) = delete;

  // Opens the connection if needed and checks that it is alive.
  [[nodiscard]] Status Ensure();
  [[nodiscard]] bool connected() const;
  // The driver's name ("TEST", "QEMU") once connected.
  [[nodiscard]] std::string driver() const;
  // A new reference to the open connection (release with virConnectClose), or
  // null when down. Typed void* to keep libvirt's headers out of this one.
  [[nodiscard]] void* Acquire() const;
  // Called on the event thread with the name of a domain or network whose
  // lifecycle changed; re-registered on every reconnect. Set it before the
  // first Ensure().
  void OnLifecycleEvent(std::function<void(const std::string& object, bool is_network)> handler);
  // Counts one libvirt call in the metrics.
  void Observe(const char* op, double seconds, bool failed) const;
  [[nodiscard]] const std::string& uri() const { return uri_; }

 private:
  const std::string uri_;
  metrics::HypervisorMetrics* const metrics_;
  mutable std::mutex mutex_;
  struct Handle;
  std::unique_ptr<Handle> handle_;
  std::string driver_;
  std::shared_ptr<std::function<void(const std::string&, bool)>> handler_;
};

}  // namespace vmlab::reconcilers::infrastructure
