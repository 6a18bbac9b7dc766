#include "reconcilers/infrastructure/libvirt_connection.h"

#include <fmt/format.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

#include "metrics/hypervisor_metrics.h"

namespace vmlab::reconcilers::infrastructure {
namespace {

using Handler = std::function<void(const std::string&, bool)>;

void LogLibvirtError(void* /*user_data*/, virErrorPtr error) {
  if (error && error->message) spdlog::debug("libvirt: {}", error->message);
}

std::string LastError() {
  const virErrorPtr error = virGetLastError();
  return error && error->message ? error->message : "unknown libvirt error";
}

int DomainEvent(virConnectPtr, virDomainPtr domain, int, int, void* opaque) {
  const auto* handler = static_cast<std::shared_ptr<Handler>*>(opaque);
  if (const char* name = virDomainGetName(domain); name && *handler && **handler)
    (**handler)(name, false);
  return 0;
}

void NetworkEvent(virConnectPtr, virNetworkPtr network, int, int, void* opaque) {
  const auto* handler = static_cast<std::shared_ptr<Handler>*>(opaque);
  if (const char* name = virNetworkGetName(network); name && *handler && **handler)
    (**handler)(name, true);
}

void FreeOpaque(void* opaque) { delete static_cast<std::shared_ptr<Handler>*>(opaque); }

}  // namespace

struct LibvirtConnection::Handle {
  virConnectPtr conn = nullptr;
  int domain_callback = -1;
  int network_callback = -1;
  ~Handle() {
    if (!conn) return;
    if (domain_callback >= 0) virConnectDomainEventDeregisterAny(conn, domain_callback);
    if (network_callback >= 0) virConnectNetworkEventDeregisterAny(conn, network_callback);
    virConnectClose(conn);
  }
};

LibvirtConnection::LibvirtConnection(std::string uri, metrics::HypervisorMetrics* metrics)
    : uri_(std::move(uri)), metrics_(metrics), handler_(std::make_shared<Handler>()) {
  static std::once_flag once;
  std::call_once(once, [] {
    virInitialize();
    virSetErrorFunc(nullptr, LogLibvirtError);
    // libvirt's default event loop, on a thread that lives as long as the process.
    if (virEventRegisterDefaultImpl() == 0) {
      std::thread([] {
        while (virEventRunDefaultImpl() == 0) {
        }
      }).detach();
    }
  });
  if (metrics_) metrics_->SetConnected(false);
}

LibvirtConnection::~LibvirtConnection() = default;

void LibvirtConnection::OnLifecycleEvent(Handler handler) {
  std::lock_guard guard(mutex_);
  *handler_ = std::move(handler);
}

void LibvirtConnection::Observe(const char* op, double seconds, bool failed) const {
  if (metrics_) metrics_->ObserveCall(op, seconds, failed);
}

Status LibvirtConnection::Ensure() {
  std::lock_guard guard(mutex_);
  if (handle_ && virConnectIsAlive(handle_->conn) == 1) return {};
  handle_.reset();
  const auto start = std::chrono::steady_clock::now();
  auto handle = std::make_unique<Handle>();
  handle->conn = virConnectOpen(uri_.c_str());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Observe("connect", seconds, handle->conn == nullptr);
  if (!handle->conn) {
    if (metrics_) metrics_->SetConnected(false);
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot connect to libvirt at {}: {}", uri_, LastError()));
  }
  const char* type = virConnectGetType(handle->conn);
  driver_ = type ? type : "";
  if (driver_ != "TEST") {
    // A dead daemon is noticed within 5 s x 3 probes, not at the next call.
    virConnectSetKeepAlive(handle->conn, 5, 3);
  }
  handle->domain_callback = virConnectDomainEventRegisterAny(
      handle->conn, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(DomainEvent),
      new std::shared_ptr<Handler>(handler_), FreeOpaque);
  handle->network_callback = virConnectNetworkEventRegisterAny(
      handle->conn, nullptr, VIR_NETWORK_EVENT_ID_LIFECYCLE,
      VIR_NETWORK_EVENT_CALLBACK(NetworkEvent), new std::shared_ptr<Handler>(handler_), FreeOpaque);
  handle_ = std::move(handle);
  if (metrics_) metrics_->SetConnected(true);
  return {};
}

bool LibvirtConnection::connected() const {
  std::lock_guard guard(mutex_);
  const bool alive = handle_ && virConnectIsAlive(handle_->conn) == 1;
  if (metrics_) metrics_->SetConnected(alive);
  return alive;
}

std::string LibvirtConnection::driver() const {
  std::lock_guard guard(mutex_);
  return driver_;
}

void* LibvirtConnection::Acquire() const {
  std::lock_guard guard(mutex_);
  if (!handle_ || virConnectRef(handle_->conn) != 0) return nullptr;
  return handle_->conn;
}

}  // namespace vmlab::reconcilers::infrastructure
