#include "reconcilers/infrastructure/libvirt_connection.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "metrics/hypervisor_metrics.h"

namespace vmlab::reconcilers::infrastructure {
namespace {

void LogLibvirtError(void* /*user_data*/, virErrorPtr error) {
  if (error && error->message) spdlog::debug("libvirt: {}", error->message);
}

std::string LastError() {
  const virErrorPtr error = virGetLastError();
  return error && error->message ? error->message : "unknown libvirt error";
}

}  // namespace

struct LibvirtConnection::Handle {
  virConnectPtr conn = nullptr;
  ~Handle() {
    if (conn) virConnectClose(conn);
  }
};

LibvirtConnection::LibvirtConnection(std::string uri, metrics::HypervisorMetrics* metrics)
    : uri_(std::move(uri)), metrics_(metrics) {
  static std::once_flag once;
  std::call_once(once, [] {
    virInitialize();
    virSetErrorFunc(nullptr, LogLibvirtError);
  });
  if (metrics_) metrics_->SetConnected(false);
}

LibvirtConnection::~LibvirtConnection() = default;

Status LibvirtConnection::Ensure() {
  std::lock_guard guard(mutex_);
  if (handle_ && virConnectIsAlive(handle_->conn) == 1) return {};
  handle_.reset();
  const auto start = std::chrono::steady_clock::now();
  auto handle = std::make_unique<Handle>();
  handle->conn = virConnectOpen(uri_.c_str());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (metrics_) metrics_->ObserveCall("connect", seconds, handle->conn == nullptr);
  if (!handle->conn) {
    if (metrics_) metrics_->SetConnected(false);
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot connect to libvirt at {}: {}", uri_, LastError()));
  }
  const char* type = virConnectGetType(handle->conn);
  driver_ = type ? type : "";
  handle_ = std::move(handle);
  if (metrics_) metrics_->SetConnected(true);
  return {};
}

bool LibvirtConnection::connected() const {
  std::lock_guard guard(mutex_);
  return handle_ && virConnectIsAlive(handle_->conn) == 1;
}

std::string LibvirtConnection::driver() const {
  std::lock_guard guard(mutex_);
  return driver_;
}

}  // namespace vmlab::reconcilers::infrastructure
