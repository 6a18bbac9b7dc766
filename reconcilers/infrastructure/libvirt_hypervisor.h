// LibvirtHypervisor: the Hypervisor seam over libvirt's C API, on a shared
// LibvirtConnection. RAII wrappers free every libvirt object; every call is
// timed and counted (vmlab_libvirt_call_duration_seconds / _errors_total);
// libvirt errors become vmlab error codes. Thread-safe.
#pragma once

#include "reconcilers/infrastructure/hypervisor.h"
#include "reconcilers/infrastructure/libvirt_connection.h"

namespace vmlab::reconcilers::infrastructure {

class LibvirtHypervisor final : public Hypervisor {
 public:
  explicit LibvirtHypervisor(LibvirtConnection& connection) : connection_(connection) {}

  [[nodiscard]] Result<std::vector<DomainInfo>> ListDomains(
      std::string_view name_prefix = {}) override;
  [[nodiscard]] Result<std::vector<NetworkInfo>> ListNetworks(
      std::string_view name_prefix = {}) override;
  [[nodiscard]] std::string Driver() override { return connection_.driver(); }
  [[nodiscard]] Result<HostInfo> Host() override;
  [[nodiscard]] Result<std::string> DomainCapabilities(const std::string& virttype) override;
  [[nodiscard]] Status DefineNetwork(const std::string& xml) override;
  [[nodiscard]] Status StartNetwork(const std::string& name) override;
  [[nodiscard]] Status DeleteNetwork(const std::string& name) override;
  [[nodiscard]] Status UpdateNetworkHost(const std::string& network, bool add,
                                         const std::string& dhcp_host_xml,
                                         const std::string& dns_host_xml) override;
  [[nodiscard]] Status EnsurePool(const std::string& name, const std::string& path) override;
  [[nodiscard]] Result<std::vector<VolumeInfo>> ListVolumes(
      const std::string& pool, std::string_view name_prefix = {}) override;
  [[nodiscard]] Status CreateVolume(const std::string& pool, const std::string& xml,
                                    std::string_view content = {}) override;
  [[nodiscard]] Status DeleteVolume(const std::string& pool, const std::string& name) override;
  [[nodiscard]] Status DefineDomain(const std::string& xml) override;
  [[nodiscard]] Status StartDomain(const std::string& name) override;
  [[nodiscard]] Status StopDomain(const std::string& name) override;
  [[nodiscard]] Status DeleteDomain(const std::string& name) override;
  void WatchEvents(std::function<void(const std::string& lab)> on_event) override;

 private:
  LibvirtConnection& connection_;
};

}  // namespace vmlab::reconcilers::infrastructure
