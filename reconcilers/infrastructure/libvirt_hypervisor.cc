#include "reconcilers/infrastructure/libvirt_hypervisor.h"

#include <fmt/format.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "reconcilers/infrastructure/fault_injection.h"

namespace vmlab::reconcilers::infrastructure {
namespace {

struct ConnCloser {
  void operator()(virConnectPtr p) const { virConnectClose(p); }
};
struct DomainFree {
  void operator()(virDomainPtr p) const { virDomainFree(p); }
};
struct NetworkFree {
  void operator()(virNetworkPtr p) const { virNetworkFree(p); }
};
struct PoolFree {
  void operator()(virStoragePoolPtr p) const { virStoragePoolFree(p); }
};
struct VolFree {
  void operator()(virStorageVolPtr p) const { virStorageVolFree(p); }
};
struct StreamFree {
  void operator()(virStreamPtr p) const { virStreamFree(p); }
};
struct CharFree {
  void operator()(char* p) const { std::free(p); }
};
using Conn = std::unique_ptr<virConnect, ConnCloser>;
using Domain = std::unique_ptr<virDomain, DomainFree>;
using Network = std::unique_ptr<virNetwork, NetworkFree>;
using Pool = std::unique_ptr<virStoragePool, PoolFree>;
using Vol = std::unique_ptr<virStorageVol, VolFree>;
using Stream = std::unique_ptr<virStream, StreamFree>;
using CString = std::unique_ptr<char, CharFree>;

// The last libvirt error as a vmlab error: what retrying means decides the code.
Error LibvirtError(const char* op) {
  const virErrorPtr e = virGetLastError();
  const std::string message = e && e->message ? e->message : "unknown libvirt error";
  ErrorCode code = ErrorCode::kInternal;
  if (e) {
    switch (e->code) {
      case VIR_ERR_NO_DOMAIN:
      case VIR_ERR_NO_NETWORK:
      case VIR_ERR_NO_STORAGE_POOL:
      case VIR_ERR_NO_STORAGE_VOL:
        code = ErrorCode::kNotFound;
        break;
      case VIR_ERR_SYSTEM_ERROR:
      case VIR_ERR_RPC:
      case VIR_ERR_NO_CONNECT:
      case VIR_ERR_INVALID_CONN:
      case VIR_ERR_AUTH_FAILED:
        code = ErrorCode::kUnavailable;
        break;
      case VIR_ERR_XML_ERROR:
      case VIR_ERR_XML_DETAIL:
      case VIR_ERR_CONFIG_UNSUPPORTED:
      case VIR_ERR_INVALID_ARG:
        code = ErrorCode::kInvalidArgument;
        break;
      case VIR_ERR_OPERATION_INVALID:
      case VIR_ERR_OPERATION_FAILED:
      case VIR_ERR_NO_SUPPORT:
        code = ErrorCode::kFailedPrecondition;
        break;
      default:
        code = ErrorCode::kUnavailable;
    }
  }
  return Error{code, fmt::format("libvirt {}: {}", op, message)};
}

// Runs `body` with the connection, timing it as `op`.
template <typename Body>
auto Call(const LibvirtConnection& connection, const char* op, Body body)
    -> decltype(body(std::declval<virConnectPtr>())) {
  Conn conn(static_cast<virConnectPtr>(connection.Acquire()));
  if (!conn) {
    return std::unexpected(
        Error{ErrorCode::kUnavailable,
              fmt::format("libvirt {}: not connected to {}", op, connection.uri())});
  }
  const auto start = std::chrono::steady_clock::now();
  auto result = body(conn.get());
  connection.Observe(
      op, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
      !result.has_value());
  return result;
}

std::string StateName(int state) {
  switch (state) {
    case VIR_DOMAIN_RUNNING:
      return "running";
    case VIR_DOMAIN_BLOCKED:
      return "blocked";
    case VIR_DOMAIN_PAUSED:
      return "paused";
    case VIR_DOMAIN_SHUTDOWN:
      return "shutdown";
    case VIR_DOMAIN_SHUTOFF:
      return "shutoff";
    case VIR_DOMAIN_CRASHED:
      return "crashed";
    case VIR_DOMAIN_PMSUSPENDED:
      return "pmsuspended";
    default:
      return "unknown";
  }
}

// The persistent definition: what vmlab wrote (ownership) and what the domain
// will run with on its next start (so a `virsh edit` shows as drift).
std::string InactiveXml(virDomainPtr domain) {
  CString xml(virDomainGetXMLDesc(domain, VIR_DOMAIN_XML_INACTIVE));
  if (!xml) {
    virResetLastError();
    return "";
  }
  return xml.get();
}

std::optional<Ownership> DomainOwner(virDomainPtr domain) {
  return ParseOwnership(InactiveXml(domain));
}

}  // namespace

Result<std::vector<DomainInfo>> LibvirtHypervisor::ListDomains(std::string_view name_prefix) {
  return Call(connection_, "list_domains",
              [name_prefix](virConnectPtr conn) -> Result<std::vector<DomainInfo>> {
                virDomainPtr* raw = nullptr;
                const int count = virConnectListAllDomains(conn, &raw, 0);
                if (count < 0) return std::unexpected(LibvirtError("list domains"));
                std::vector<Domain> domains;
                for (int i = 0; i < count; ++i) domains.emplace_back(raw[i]);
                std::free(raw);
                std::vector<DomainInfo> out;
                for (const Domain& domain : domains) {
                  DomainInfo info;
                  info.name = virDomainGetName(domain.get());
                  if (!info.name.starts_with(name_prefix)) continue;
                  virDomainInfo state{};
                  if (virDomainGetInfo(domain.get(), &state) == 0) {
                    info.state = StateName(state.state);
                    if (virDomainIsActive(domain.get()) == 1) {
                      info.live_vcpus = state.nrVirtCpu;
                      info.live_memory_mib = static_cast<int>(state.maxMem / 1024);
                    }
                  }
                  const std::string xml = InactiveXml(domain.get());
                  info.owner = ParseOwnership(xml);
                  if (const auto resources = ParseDomainResources(xml)) {
                    info.vcpus = resources->vcpus;
                    info.memory_mib = resources->memory_mib;
                  }
                  if (info.live_vcpus > 0 &&
                      (info.live_vcpus != info.vcpus || info.live_memory_mib != info.memory_mib)) {
                    // Rare (a restart to come): only then the live definition is read.
                    if (CString live(virDomainGetXMLDesc(domain.get(), 0)); live) {
                      if (const auto owner = ParseOwnership(live.get()))
                        info.live_spec_hash = owner->spec_hash;
                    } else {
                      virResetLastError();
                    }
                  }
                  out.push_back(std::move(info));
                }
                return out;
              });
}

Result<std::vector<NetworkInfo>> LibvirtHypervisor::ListNetworks(std::string_view name_prefix) {
  return Call(connection_, "list_networks",
              [name_prefix](virConnectPtr conn) -> Result<std::vector<NetworkInfo>> {
                virNetworkPtr* raw = nullptr;
                const int count = virConnectListAllNetworks(conn, &raw, 0);
                if (count < 0) return std::unexpected(LibvirtError("list networks"));
                std::vector<Network> networks;
                for (int i = 0; i < count; ++i) networks.emplace_back(raw[i]);
                std::free(raw);
                std::vector<NetworkInfo> out;
                for (const Network& network : networks) {
                  NetworkInfo info;
                  info.name = virNetworkGetName(network.get());
                  if (!info.name.starts_with(name_prefix)) continue;
                  info.active = virNetworkIsActive(network.get()) == 1;
                  if (CString xml(virNetworkGetXMLDesc(network.get(), 0)); xml) {
                    info.owner = ParseOwnership(xml.get());
                    info.dhcp_hosts = ParseDhcpHosts(xml.get());
                    info.dns_hosts = ParseDnsHosts(xml.get());
                    info.cidrs = ParseNetworkCidrs(xml.get());
                  }
                  out.push_back(std::move(info));
                }
                return out;
              });
}

Result<HostInfo> LibvirtHypervisor::Host() {
  return Call(connection_, "node_info", [](virConnectPtr conn) -> Result<HostInfo> {
    virNodeInfo info{};
    if (virNodeGetInfo(conn, &info) != 0) return std::unexpected(LibvirtError("node info"));
    return HostInfo{static_cast<int>(info.cpus), static_cast<int>(info.memory / 1024)};
  });
}

Result<std::string> LibvirtHypervisor::DomainCapabilities(const std::string& virttype) {
  return Call(connection_, "domain_capabilities", [&](virConnectPtr conn) -> Result<std::string> {
    const CString xml(
        virConnectGetDomainCapabilities(conn, nullptr, "x86_64", "q35", virttype.c_str(), 0));
    if (!xml) return std::unexpected(LibvirtError("domain capabilities"));
    return std::string(xml.get());
  });
}

Status LibvirtHypervisor::DefineNetwork(const std::string& xml) {
  return Call(connection_, "define_network", [&](virConnectPtr conn) -> Status {
    Network network(virNetworkDefineXML(conn, xml.c_str()));
    if (!network) return std::unexpected(LibvirtError("define network"));
    MutationDone("define network", virNetworkGetName(network.get()));
    virNetworkSetAutostart(network.get(), 1);
    MutationDone("autostart network", virNetworkGetName(network.get()));
    return {};
  });
}

Status LibvirtHypervisor::StartNetwork(const std::string& name) {
  return Call(connection_, "start_network", [&](virConnectPtr conn) -> Status {
    Network network(virNetworkLookupByName(conn, name.c_str()));
    if (!network) return std::unexpected(LibvirtError("look up network"));
    if (virNetworkIsActive(network.get()) == 1) return {};
    // Defined by a process that died before it set autostart: set now.
    if (int autostart = 0; virNetworkGetAutostart(network.get(), &autostart) == 0 && !autostart) {
      virNetworkSetAutostart(network.get(), 1);
      MutationDone("autostart network", name);
    }
    if (virNetworkCreate(network.get()) != 0) {
      Error error = LibvirtError("start network");
      // libvirtd stopped in the middle of an earlier start leaves the bridge
      // behind, unknown to it; only the host's administrator can remove it.
      const auto bridge = error.message.find("error creating bridge interface ");
      if (bridge != std::string::npos && error.message.find("File exists") != std::string::npos) {
        const auto start = bridge + std::string_view("error creating bridge interface ").size();
        const std::string device =
            error.message.substr(start, error.message.find(':', start) - start);
        error.message += fmt::format(
            " (left by an earlier start that libvirtd did not finish: remove it with `ip link "
            "delete {}`; vmlab starts the network on its next pass)",
            device);
      }
      return std::unexpected(std::move(error));
    }
    MutationDone("start network", name);
    return {};
  });
}

Status LibvirtHypervisor::DeleteNetwork(const std::string& name) {
  return Call(connection_, "delete_network", [&](virConnectPtr conn) -> Status {
    Network network(virNetworkLookupByName(conn, name.c_str()));
    if (!network) return std::unexpected(LibvirtError("look up network"));
    if (virNetworkIsActive(network.get()) == 1) {
      if (virNetworkDestroy(network.get()) != 0)
        return std::unexpected(LibvirtError("stop network"));
      MutationDone("stop network", name);
    }
    if (virNetworkUndefine(network.get()) != 0)
      return std::unexpected(LibvirtError("undefine network"));
    MutationDone("undefine network", name);
    return {};
  });
}

Status LibvirtHypervisor::UpdateNetworkHost(const std::string& name, bool add,
                                            const std::string& dhcp_host_xml,
                                            const std::string& dns_host_xml) {
  return Call(connection_, "update_network", [&](virConnectPtr conn) -> Status {
    Network network(virNetworkLookupByName(conn, name.c_str()));
    if (!network) return std::unexpected(LibvirtError("look up network"));
    const unsigned int flags =
        virNetworkIsActive(network.get()) == 1
            ? VIR_NETWORK_UPDATE_AFFECT_LIVE | VIR_NETWORK_UPDATE_AFFECT_CONFIG
            : VIR_NETWORK_UPDATE_AFFECT_CONFIG;
    const unsigned int command =
        add ? VIR_NETWORK_UPDATE_COMMAND_ADD_LAST : VIR_NETWORK_UPDATE_COMMAND_DELETE;
    for (const auto& [section, xml] : {std::pair{VIR_NETWORK_SECTION_IP_DHCP_HOST, &dhcp_host_xml},
                                       std::pair{VIR_NETWORK_SECTION_DNS_HOST, &dns_host_xml}}) {
      if (xml->empty()) continue;  // that section is as it should be already
      if (virNetworkUpdate(network.get(), command, section, -1, xml->c_str(), flags) != 0) {
        return std::unexpected(LibvirtError(add ? "add network host" : "remove network host"));
      }
      MutationDone(add ? "add network host" : "remove network host", *xml);
    }
    return {};
  });
}

Status LibvirtHypervisor::EnsurePool(const std::string& name, const std::string& path) {
  return Call(connection_, "ensure_pool", [&](virConnectPtr conn) -> Status {
    Pool pool(virStoragePoolLookupByName(conn, name.c_str()));
    if (!pool) {
      virResetLastError();
      const std::string xml = fmt::format(
          "<pool type='dir'><name>{}</name><target><path>{}</path><permissions><mode>0711</mode>"
          "</permissions></target></pool>",
          name, path);
      pool.reset(virStoragePoolDefineXML(conn, xml.c_str(), 0));
      if (!pool) return std::unexpected(LibvirtError("define pool"));
      MutationDone("define pool", name);  // built and started below, as an inactive pool
    } else if (CString xml(virStoragePoolGetXMLDesc(pool.get(), 0)); xml) {
      // One pool per libvirt: a pool of this name in another folder belongs
      // to another vmlab state dir, whose volumes this controller must not
      // take for its own (nor write its own where it does not look).
      const std::string text = xml.get();
      const auto target = text.find("<target>");
      const auto start = text.find("<path>", target);
      const auto end = text.find("</path>", start);
      if (target != std::string::npos && start != std::string::npos && end != std::string::npos) {
        const std::string existing = text.substr(start + 6, end - start - 6);
        std::error_code ec;
        if (std::filesystem::weakly_canonical(existing, ec) !=
            std::filesystem::weakly_canonical(path, ec)) {
          return MakeError(
              ErrorCode::kFailedPrecondition,
              fmt::format("libvirt's storage pool {n} is at {existing}, not at {path}: another "
                          "vmlab state dir uses this libvirt. Run one controller per libvirt, "
                          "or remove the pool once none of its labs is left (virsh "
                          "pool-destroy {n}; virsh pool-undefine {n})",
                          fmt::arg("n", name), fmt::arg("existing", existing),
                          fmt::arg("path", path)));
        }
      }
    }
    if (int autostart = 0; virStoragePoolGetAutostart(pool.get(), &autostart) == 0 && !autostart) {
      virStoragePoolSetAutostart(pool.get(), 1);  // a pool defined by a process that died early
      MutationDone("autostart pool", name);
    }
    if (virStoragePoolIsActive(pool.get()) != 1) {
      // Built again first: a pool defined by a process that died before
      // building it has no folder, and a dir pool's build keeps what is there.
      if (virStoragePoolBuild(pool.get(), 0) != 0)
        return std::unexpected(LibvirtError("build pool"));
      MutationDone("build pool", name);
      if (virStoragePoolCreate(pool.get(), 0) != 0)
        return std::unexpected(LibvirtError("start pool"));
      MutationDone("start pool", name);
    }
    return {};
  });
}

Result<std::vector<VolumeInfo>> LibvirtHypervisor::ListVolumes(const std::string& pool_name,
                                                               std::string_view name_prefix) {
  return Call(connection_, "list_volumes",
              [&](virConnectPtr conn) -> Result<std::vector<VolumeInfo>> {
                Pool pool(virStoragePoolLookupByName(conn, pool_name.c_str()));
                if (!pool) return std::unexpected(LibvirtError("look up pool"));
                virStorageVolPtr* raw = nullptr;
                const int count = virStoragePoolListAllVolumes(pool.get(), &raw, 0);
                if (count < 0) return std::unexpected(LibvirtError("list volumes"));
                std::vector<VolumeInfo> out;
                for (int i = 0; i < count; ++i) {
                  Vol vol(raw[i]);
                  std::string name = virStorageVolGetName(vol.get());
                  if (!name.starts_with(name_prefix)) continue;
                  CString path(virStorageVolGetPath(vol.get()));
                  out.push_back({std::move(name), path ? path.get() : ""});
                }
                std::free(raw);
                return out;
              });
}

Status LibvirtHypervisor::CreateVolume(const std::string& pool_name, const std::string& xml,
                                       std::string_view content) {
  const bool test_driver = Driver() == "TEST";
  return Call(connection_, content.empty() ? "create_volume" : "create_upload_volume",
              [&](virConnectPtr conn) -> Status {
                Pool pool(virStoragePoolLookupByName(conn, pool_name.c_str()));
                if (!pool) return std::unexpected(LibvirtError("look up pool"));
                Vol vol(virStorageVolCreateXML(pool.get(), xml.c_str(), 0));
                if (!vol) return std::unexpected(LibvirtError("create volume"));
                MutationDone("create volume", virStorageVolGetName(vol.get()));
                if (content.empty()) return {};
                // From here on a failure removes the volume again: never a half-written seed.
                auto fail = [&](const char* op) {
                  Error error = LibvirtError(op);
                  virStorageVolDelete(vol.get(), 0);
                  return std::unexpected(std::move(error));
                };
                Stream stream(virStreamNew(conn, 0));
                if (!stream) return fail("new stream");
                if (virStorageVolUpload(vol.get(), stream.get(), 0, content.size(), 0) != 0) {
                  const virErrorPtr e = virGetLastError();
                  if (test_driver && e && e->code == VIR_ERR_NO_SUPPORT) {
                    virResetLastError();
                    return {};  // the test driver keeps no contents (see the seam)
                  }
                  return fail("upload volume");
                }
                for (std::size_t sent = 0; sent < content.size();) {
                  const int n =
                      virStreamSend(stream.get(), content.data() + sent,
                                    std::min<std::size_t>(content.size() - sent, 256 * 1024));
                  if (n < 0) {
                    virStreamAbort(stream.get());
                    return fail("upload volume");
                  }
                  sent += static_cast<std::size_t>(n);
                }
                if (virStreamFinish(stream.get()) != 0) return fail("finish upload");
                MutationDone("upload volume", virStorageVolGetName(vol.get()));
                return {};
              });
}

Status LibvirtHypervisor::DeleteVolume(const std::string& pool_name, const std::string& name) {
  return Call(connection_, "delete_volume", [&](virConnectPtr conn) -> Status {
    Pool pool(virStoragePoolLookupByName(conn, pool_name.c_str()));
    if (!pool) return std::unexpected(LibvirtError("look up pool"));
    Vol vol(virStorageVolLookupByName(pool.get(), name.c_str()));
    if (!vol) return std::unexpected(LibvirtError("look up volume"));
    if (virStorageVolDelete(vol.get(), 0) != 0)
      return std::unexpected(LibvirtError("delete volume"));
    MutationDone("delete volume", name);
    return {};
  });
}

Status LibvirtHypervisor::DefineDomain(const std::string& xml) {
  return Call(connection_, "define_domain", [&](virConnectPtr conn) -> Status {
    Domain domain(virDomainDefineXML(conn, xml.c_str()));
    if (!domain) return std::unexpected(LibvirtError("define domain"));
    MutationDone("define domain", virDomainGetName(domain.get()));
    return {};
  });
}

Status LibvirtHypervisor::StartDomain(const std::string& name) {
  return Call(connection_, "start_domain", [&](virConnectPtr conn) -> Status {
    Domain domain(virDomainLookupByName(conn, name.c_str()));
    if (!domain) return std::unexpected(LibvirtError("look up domain"));
    if (virDomainIsActive(domain.get()) == 1) {
      virDomainInfo info{};
      // A paused or crashed domain is stopped first, then started anew.
      if (virDomainGetInfo(domain.get(), &info) == 0 && info.state == VIR_DOMAIN_RUNNING) return {};
      if (virDomainDestroy(domain.get()) != 0) return std::unexpected(LibvirtError("stop domain"));
      MutationDone("stop domain", name);
    }
    if (virDomainCreate(domain.get()) != 0) return std::unexpected(LibvirtError("start domain"));
    MutationDone("start domain", name);
    return {};
  });
}

Status LibvirtHypervisor::StopDomain(const std::string& name) {
  return Call(connection_, "stop_domain", [&](virConnectPtr conn) -> Status {
    Domain domain(virDomainLookupByName(conn, name.c_str()));
    if (!domain) return std::unexpected(LibvirtError("look up domain"));
    if (virDomainIsActive(domain.get()) == 1) {
      if (virDomainDestroy(domain.get()) != 0) return std::unexpected(LibvirtError("stop domain"));
      MutationDone("stop domain", name);
    }
    return {};
  });
}

Status LibvirtHypervisor::DeleteDomain(const std::string& name) {
  return Call(connection_, "delete_domain", [&](virConnectPtr conn) -> Status {
    Domain domain(virDomainLookupByName(conn, name.c_str()));
    if (!domain) return std::unexpected(LibvirtError("look up domain"));
    if (virDomainIsActive(domain.get()) == 1) {
      if (virDomainDestroy(domain.get()) != 0) return std::unexpected(LibvirtError("stop domain"));
      MutationDone("stop domain", name);
    }
    if (virDomainUndefine(domain.get()) != 0) {
      return std::unexpected(LibvirtError("undefine domain"));
    }
    MutationDone("undefine domain", name);
    return {};
  });
}

void LibvirtHypervisor::WatchEvents(std::function<void(const std::string& lab)> on_event) {
  connection_.OnLifecycleEvent([this, on_event](const std::string& object, bool is_network) {
    if (is_network) {
      // vmlab's networks are named vmlab-<lab>; the reconcile checks ownership.
      if (object.starts_with("vmlab-")) on_event(object.substr(6));
      return;
    }
    Conn conn(static_cast<virConnectPtr>(connection_.Acquire()));
    if (!conn) return;
    Domain domain(virDomainLookupByName(conn.get(), object.c_str()));
    if (!domain) {
      virResetLastError();
      // Undefined: the name says which lab it was (<lab>-cp-i / <lab>-worker-i).
      for (const char* marker : {"-cp-", "-worker-"}) {
        if (const auto at = object.rfind(marker); at != std::string::npos)
          on_event(object.substr(0, at));
      }
      return;
    }
    if (auto owner = DomainOwner(domain.get())) on_event(owner->lab);
  });
}

}  // namespace vmlab::reconcilers::infrastructure
