// The metrics registry of one controller process: every family registers
// here, and Serialize renders the Prometheus text exposition for /metrics,
// process metrics included. An object, not a global: tests build their own.
// Thread-safe (prometheus-cpp families and metrics are).
#pragma once

#include <memory>
#include <string>

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace vmlab::metrics {

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  [[nodiscard]] prometheus::Registry& prometheus() { return *registry_; }
  // Text exposition format 0.0.4, including process_* metrics of this process.
  [[nodiscard]] std::string Serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
};

// Prometheus text exposition content type.
inline constexpr const char* kExpositionContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace vmlab::metrics
