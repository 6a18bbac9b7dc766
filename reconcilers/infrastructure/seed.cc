#include "reconcilers/infrastructure/seed.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

#include "reconcilers/infrastructure/identity.h"

namespace vmlab::reconcilers::infrastructure {
namespace {

std::string Ip(std::uint64_t address) {
  return crds::Ipv4Address{static_cast<std::uint32_t>(address)}.ToString();
}

std::string Emit(const YAML::Emitter& out) { return std::string(out.c_str()) + "\n"; }

// libisofs keeps global state: initialised once per process, and told never to
// print its messages (errors come back as return codes).
Status InitLibisofs() {
  static std::once_flag once;
  static int result = 0;
  std::call_once(once, [] {
    result = iso_init();
    if (result >= 0) {
      char never[] = "NEVER";
      char fatal[] = "FATAL";
      char id[] = "vmlab";
      iso_set_msgs_severities(never, fatal, id);
    }
  });
  if (result < 0) {
    return std::unexpected(
        Error{ErrorCode::kInternal, fmt::format("libisofs: cannot initialise ({:#x})", result)});
  }
  return {};
}

Error IsoError(const char* what, int code) {
  return Error{ErrorCode::kInternal,
               fmt::format("seed image: {}: {}", what, iso_error_to_msg(code))};
}

struct ImageUnref {
  void operator()(IsoImage* p) const { iso_image_unref(p); }
};
struct OptsFree {
  void operator()(IsoWriteOpts* p) const { iso_write_opts_free(p); }
};
struct SourceFree {
  void operator()(burn_source* p) const {
    p->free_data(p);
    std::free(p);
  }
};

}  // namespace

SeedFiles RenderSeedFiles(const crds::LabCluster& lab, const crds::PlannedNode& node,
                          std::string user_data) {
  const auto& network = lab.spec.network;
  SeedFiles files;
  {
    YAML::Emitter out;
    out << YAML::BeginMap;
    // Stable per node: a restarted VM keeps its instance and cloud-init does not run again.
    out << YAML::Key << "instance-id" << YAML::Value
        << "iid-" + DomainUuid(lab.metadata.name, node.name);
    out << YAML::Key << "local-hostname" << YAML::Value << node.name;
    out << YAML::EndMap;
    files.meta_data = Emit(out);
  }
  {
    // cloud-init 22.4's ifupdown renderer (Debian 12) keeps `gateway4` and
    // drops a `routes:` default route: gateway4 it is.
    YAML::Emitter out;
    out << YAML::BeginMap << YAML::Key << "version" << YAML::Value << 2;
    out << YAML::Key << "ethernets" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "eth0" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "match" << YAML::Value << YAML::BeginMap << YAML::Key << "macaddress"
        << YAML::Value << YAML::DoubleQuoted << MacAddress(lab.metadata.name, node.name)
        << YAML::EndMap;
    out << YAML::Key << "set-name" << YAML::Value << "eth0";
    out << YAML::Key << "addresses" << YAML::Value << YAML::BeginSeq
        << fmt::format("{}/{}", Ip(node.address), network.cidr.prefix_length) << YAML::EndSeq;
    const std::string gateway = Ip(network.cidr.OffsetAddress(crds::kGatewayOffset));
    out << YAML::Key << "gateway4" << YAML::Value << gateway;
    out << YAML::Key << "nameservers" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "addresses" << YAML::Value << YAML::BeginSeq << gateway << YAML::EndSeq;
    out << YAML::Key << "search" << YAML::Value << YAML::BeginSeq << network.domain << YAML::EndSeq;
    out << YAML::EndMap << YAML::EndMap << YAML::EndMap << YAML::EndMap;
    files.network_config = Emit(out);
  }
  files.user_data = std::move(user_data);
  return files;
}

Result<std::string> BuildSeedIso(const SeedFiles& files) {
  if (auto init = InitLibisofs(); !init) return std::unexpected(init.error());
  IsoImage* raw_image = nullptr;
  if (int r = iso_image_new("cidata", &raw_image); r < 0)
    return std::unexpected(IsoError("new", r));
  std::unique_ptr<IsoImage, ImageUnref> image(raw_image);
  iso_image_set_volume_id(image.get(), "cidata");

  const std::pair<const char*, const std::string*> entries[] = {
      {"meta-data", &files.meta_data},
      {"network-config", &files.network_config},
      {"user-data", &files.user_data},
  };
  for (const auto& [name, content] : entries) {
    // The memory stream takes ownership of a malloc'ed buffer.
    auto* buffer = static_cast<unsigned char*>(std::malloc(content->size() + 1));
    if (!buffer)
      return std::unexpected(Error{ErrorCode::kResourceExhausted, "seed image: out of memory"});
    std::memcpy(buffer, content->data(), content->size());
    IsoStream* stream = nullptr;
    if (int r = iso_memory_stream_new(buffer, content->size(), &stream); r < 0) {
      std::free(buffer);
      return std::unexpected(IsoError(name, r));
    }
    IsoFile* file = nullptr;
    // The new file takes over the stream's reference.
    const int r =
        iso_image_add_new_file(image.get(), iso_image_get_root(image.get()), name, stream, &file);
    if (r < 0) {
      iso_stream_unref(stream);
      return std::unexpected(IsoError(name, r));
    }
    iso_node_set_permissions(reinterpret_cast<IsoNode*>(file), 0444);
  }

  IsoWriteOpts* raw_opts = nullptr;
  if (int r = iso_write_opts_new(&raw_opts, 0); r < 0)
    return std::unexpected(IsoError("options", r));
  std::unique_ptr<IsoWriteOpts, OptsFree> opts(raw_opts);
  iso_write_opts_set_rockridge(opts.get(), 1);
  iso_write_opts_set_joliet(opts.get(), 1);
  iso_write_opts_set_relaxed_vol_atts(opts.get(), 1);  // volume id "cidata", not "CIDATA"
  // Reproducible: fixed ownership, modes and timestamps, no random volume times.
  iso_write_opts_set_replace_mode(opts.get(), 1, 1, 1, 1);
  iso_write_opts_set_default_dir_mode(opts.get(), 0555);
  iso_write_opts_set_default_file_mode(opts.get(), 0444);
  iso_write_opts_set_default_uid(opts.get(), 0);
  iso_write_opts_set_default_gid(opts.get(), 0);
  iso_write_opts_set_replace_timestamps(opts.get(), 2);  // the default below, not the clock
  iso_write_opts_set_default_timestamp(opts.get(), 0);
  iso_write_opts_set_always_gmt(opts.get(), 1);
  char uuid[] = "1970010100000000";
  iso_write_opts_set_pvd_times(opts.get(), 0, 0, 0, 0, uuid);

  burn_source* raw_source = nullptr;
  if (int r = iso_image_create_burn_source(image.get(), opts.get(), &raw_source); r < 0) {
    return std::unexpected(IsoError("write", r));
  }
  std::unique_ptr<burn_source, SourceFree> source(raw_source);
  std::string iso;
  unsigned char block[2048];
  for (;;) {
    const int n = source->read_xt(source.get(), block, sizeof block);
    if (n == 0) break;
    if (n < 0) return std::unexpected(Error{ErrorCode::kInternal, "seed image: write failed"});
    iso.append(reinterpret_cast<const char*>(block), static_cast<std::size_t>(n));
  }
  return iso;
}

}  // namespace vmlab::reconcilers::infrastructure
