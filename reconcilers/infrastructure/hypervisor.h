// The Hypervisor seam: what the infrastructure reconciler needs from libvirt,
// and nothing more. LibvirtHypervisor implements it over the C API; tests of
// the reconciler run it against libvirt's test:///default driver.
//
// Objects are reported with vmlab's ownership (from their <metadata>) when
// they carry it; callers must never change an object whose owner is not the
// lab they reconcile. Errors: kNotFound for a missing object, kUnavailable
// when the connection is down (retried), kFailedPrecondition/kInvalidArgument
// for a refused definition. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crds/result.h"
#include "reconcilers/infrastructure/libvirt_xml.h"

namespace vmlab::reconcilers::infrastructure {

struct DomainInfo {
  std::string name;
  std::string state;  // running, shutoff, paused, crashed, blocked, pmsuspended, shutdown
  int vcpus = 0;
  int memory_mib = 0;  // maximum memory
  std::optional<Ownership> owner;
  // What a running domain runs with now (0 when not running). After a
  // redefinition these lag behind vcpus and memory_mib until a restart.
  int live_vcpus = 0;
  int live_memory_mib = 0;
  // When those differ from the definition: the spec hash the running domain
  // was started with (its live ownership). Another hash than the defined one
  // means vmlab redefined it and its restart is still to come.
  std::string live_spec_hash{};
};

struct NetworkInfo {
  std::string name;
  bool active = false;
  std::optional<Ownership> owner;
  std::map<std::string, std::string> dhcp_hosts;   // static DHCP entries: host name -> IP
  std::vector<std::string> cidrs;                  // its IPv4 subnets, "a.b.c.d/n"
  std::map<std::string, std::string> dns_hosts{};  // DNS host entries: first host name -> IP
};

struct HostInfo {
  int cpus = 0;
  int memory_mib = 0;
};

struct VolumeInfo {
  std::string name;
  std::string path;
};

class Hypervisor {
 public:
  virtual ~Hypervisor() = default;

  // Domains whose names start with `name_prefix` (all when empty). Only those
  // are inspected (state, definition), so a lab's reconcile costs the same
  // however many other domains the host has.
  [[nodiscard]] virtual Result<std::vector<DomainInfo>> ListDomains(
      std::string_view name_prefix = {}) = 0;
  // Networks whose names start with `name_prefix` (all when empty).
  [[nodiscard]] virtual Result<std::vector<NetworkInfo>> ListNetworks(
      std::string_view name_prefix = {}) = 0;
  // The driver's name ("TEST", "QEMU").
  [[nodiscard]] virtual std::string Driver() = 0;
  // CPUs and memory of the host the domains run on.
  [[nodiscard]] virtual Result<HostInfo> Host() = 0;
  // libvirt's domain capabilities XML for x86_64 q35 guests of `virttype`
  // ("kvm", "qemu"); an error when the driver cannot provide them.
  [[nodiscard]] virtual Result<std::string> DomainCapabilities(const std::string& virttype) = 0;

  [[nodiscard]] virtual Status DefineNetwork(const std::string& xml) = 0;
  [[nodiscard]] virtual Status StartNetwork(const std::string& name) = 0;
  [[nodiscard]] virtual Status DeleteNetwork(const std::string& name) = 0;  // destroy + undefine
  // Adds or removes one node's static DHCP entry and DNS host entry, live and
  // in the persistent definition; an empty XML leaves that section alone.
  [[nodiscard]] virtual Status UpdateNetworkHost(const std::string& network, bool add,
                                                 const std::string& dhcp_host_xml,
                                                 const std::string& dns_host_xml) = 0;

  // The vmlab storage pool (a directory pool at `path`), defined, built and started.
  [[nodiscard]] virtual Status EnsurePool(const std::string& name, const std::string& path) = 0;
  // Volumes of `pool` whose names start with `name_prefix` (all when empty).
  [[nodiscard]] virtual Result<std::vector<VolumeInfo>> ListVolumes(
      const std::string& pool, std::string_view name_prefix = {}) = 0;
  // Creates a volume; with `content`, uploads it (the volume is removed again
  // when the upload fails). libvirt's test driver keeps no volume contents and
  // cannot take uploads: there the volume is created and `content` dropped.
  [[nodiscard]] virtual Status CreateVolume(const std::string& pool, const std::string& xml,
                                            std::string_view content = {}) = 0;
  [[nodiscard]] virtual Status DeleteVolume(const std::string& pool, const std::string& name) = 0;

  [[nodiscard]] virtual Status DefineDomain(const std::string& xml) = 0;
  [[nodiscard]] virtual Status StartDomain(const std::string& name) = 0;
  [[nodiscard]] virtual Status StopDomain(const std::string& name) = 0;    // destroy (hard off)
  [[nodiscard]] virtual Status DeleteDomain(const std::string& name) = 0;  // destroy + undefine

  // Calls `on_event(lab)` from libvirt's event thread when a domain or network
  // owned by `lab` changes state, is defined or undefined.
  virtual void WatchEvents(std::function<void(const std::string& lab)> on_event) = 0;
};

}  // namespace vmlab::reconcilers::infrastructure
