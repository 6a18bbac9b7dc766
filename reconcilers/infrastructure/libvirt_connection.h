// LibvirtConnection: the controller's connection to libvirt (RAII over
// virConnectPtr). Ensure() opens it or checks it is alive, and reports the
// outcome in vmlab_libvirt_connected; libvirt's own error printing goes to
// vmlab's log instead of stderr. Thread-safe.
#pragma once

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
  [[nodiscard]] const std::string& uri() const { return uri_; }

 private:
  const std::string uri_;
  metrics::HypervisorMetrics* const metrics_;
  mutable std::mutex mutex_;
  struct Handle;
  std::unique_ptr<Handle> handle_;
  std::string driver_;
};

}  // namespace vmlab::reconcilers::infrastructure
