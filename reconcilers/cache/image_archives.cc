#include "reconcilers/cache/image_archives.h"

#include <archive.h>
#include <archive_entry.h>
#include <cpprest/json.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>

#include "crds/canonical.h"
#include "reconcilers/cache/cache_sets.h"

namespace vmlab::reconcilers::cache {
namespace {

constexpr std::size_t kMaxIndexBytes = 4 * 1024 * 1024;  // manifest.json / index.json

// The top-level manifest.json and index.json of a tarball (either may be absent).
Result<std::map<std::string, std::string>> ReadIndexFiles(const std::filesystem::path& path) {
  std::unique_ptr<archive, decltype(&archive_read_free)> reader(archive_read_new(),
                                                                archive_read_free);
  archive_read_support_filter_all(reader.get());
  archive_read_support_format_tar(reader.get());
  if (archive_read_open_filename(reader.get(), path.c_str(), 64 * 1024) != ARCHIVE_OK) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: {}", path.string(), archive_error_string(reader.get())));
  }
  std::map<std::string, std::string> files;
  archive_entry* entry = nullptr;
  int status = ARCHIVE_OK;
  while ((status = archive_read_next_header(reader.get(), &entry)) == ARCHIVE_OK) {
    std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    if (name.starts_with("./")) name = name.substr(2);
    if (name != "manifest.json" && name != "index.json") {
      archive_read_data_skip(reader.get());
      continue;
    }
    const auto size = archive_entry_size(entry);
    if (size < 0 || static_cast<std::size_t>(size) > kMaxIndexBytes) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{}: {} is larger than 4 MiB", path.string(), name));
    }
    std::string content(static_cast<std::size_t>(size), '\0');
    const auto read = archive_read_data(reader.get(), content.data(), content.size());
    if (read < 0 || static_cast<std::size_t>(read) != content.size()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{}: cannot read {}: {}", path.string(), name,
                                   archive_error_string(reader.get())));
    }
    files[name] = std::move(content);
  }
  if (status != ARCHIVE_EOF) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: not a readable tarball: {}", path.string(),
                                 archive_error_string(reader.get())));
  }
  if (archive_filter_code(reader.get(), 0) != ARCHIVE_FILTER_NONE) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: is compressed ({}); containerd 1.6's `ctr images import` "
                                 "takes only uncompressed archives: decompress it",
                                 path.string(), archive_filter_name(reader.get(), 0)));
  }
  return files;
}

}  // namespace

Result<ImageArchive> InspectArchive(const std::filesystem::path& path) {
  auto files = ReadIndexFiles(path);
  if (!files) return std::unexpected(files.error());
  ImageArchive out;
  out.path = path;
  std::error_code ec;
  out.size = std::filesystem::file_size(path, ec);
  std::vector<std::string> lines;  // reference@digest
  try {
    if (const auto it = files->find("manifest.json"); it != files->end()) {
      out.format = "docker-archive";
      const auto manifest = web::json::value::parse(it->second);
      for (const auto& image : manifest.as_array()) {
        // "HEX.json" (classic docker save) or "blobs/sha256/HEX": the config's digest.
        std::string config = image.at("Config").as_string();
        config = config.substr(config.rfind('/') + 1);
        if (config.ends_with(".json")) config.resize(config.size() - 5);
        const std::string digest = "sha256:" + config;
        if (!image.has_array_field("RepoTags")) continue;
        for (const auto& tag : image.at("RepoTags").as_array()) {
          const auto reference = NormalizeImage(tag.as_string());
          out.images.insert(reference);
          lines.push_back(reference + "@" + digest);
        }
      }
    } else if (const auto index = files->find("index.json"); index != files->end()) {
      out.format = "oci-archive";
      const auto parsed = web::json::value::parse(index->second);
      for (const auto& manifest : parsed.at("manifests").as_array()) {
        const std::string digest = manifest.at("digest").as_string();
        std::string name;
        if (manifest.has_object_field("annotations")) {
          const auto& annotations = manifest.at("annotations");
          if (annotations.has_string_field("io.containerd.image.name")) {
            name = annotations.at("io.containerd.image.name").as_string();
          } else if (annotations.has_string_field("org.opencontainers.image.ref.name")) {
            name = annotations.at("org.opencontainers.image.ref.name").as_string();
          }
        }
        // A bare tag ("1.0") names no image: containerd would import it unnamed.
        if (name.empty() ||
            (name.find('/') == std::string::npos && name.find(':') == std::string::npos)) {
          continue;
        }
        const auto reference = NormalizeImage(name);
        out.images.insert(reference);
        lines.push_back(reference + "@" + digest);
      }
    } else {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{}: neither manifest.json (docker save) nor index.json (OCI) "
                                   "at its top level",
                                   path.string()));
    }
  } catch (const std::exception& e) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("{}: unreadable {}: {}", path.string(),
                    out.format == "docker-archive" ? "manifest.json" : "index.json", e.what()));
  }
  if (out.images.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: names no image (no RepoTags or image name annotations); "
                                 "save it with a name, e.g. docker save NAME:TAG",
                                 path.string()));
  }
  std::sort(lines.begin(), lines.end());
  std::string joined;
  for (const auto& line : lines) joined += line + "\n";
  out.id = crds::Sha256Hex(joined);
  return out;
}

namespace {

Result<ArchiveCatalog> Catalog(
    const std::filesystem::path& folder,
    const std::function<Result<ImageArchive>(const std::filesystem::path&)>& inspect) {
  std::error_code ec;
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    if (entry.path().filename().string().starts_with('.')) continue;
    if (entry.is_regular_file(ec)) paths.push_back(entry.path());
  }
  if (ec) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("cannot read {}: {}", folder.string(), ec.message()));
  }
  std::sort(paths.begin(), paths.end());
  ArchiveCatalog catalog;
  std::map<std::string, std::filesystem::path> seen;
  std::set<std::string> provided;
  for (const auto& path : paths) {
    auto archive = inspect(path);
    if (!archive) {
      catalog.problems.push_back(archive.error().message);
      continue;
    }
    if (const auto [it, fresh] = seen.emplace(archive->id, path); !fresh) {
      catalog.problems.push_back(fmt::format("{} holds the same images as {}; one is used",
                                             path.string(), it->second.string()));
      continue;
    }
    // Every image already provided by an archive read before: not needed.
    if (std::all_of(archive->images.begin(), archive->images.end(),
                    [&](const std::string& image) { return provided.contains(image); })) {
      catalog.problems.push_back(
          fmt::format("{} provides only images other archives provide "
                      "({}); it is not used",
                      path.string(), *archive->images.begin()));
      continue;
    }
    provided.insert(archive->images.begin(), archive->images.end());
    catalog.archives.push_back(std::move(*archive));
  }
  std::sort(catalog.archives.begin(), catalog.archives.end(),
            [](const ImageArchive& a, const ImageArchive& b) { return a.id < b.id; });
  return catalog;
}

}  // namespace

Result<ArchiveCatalog> ScanArchives(const std::filesystem::path& folder) {
  return Catalog(folder, InspectArchive);
}

Result<ArchiveCatalog> ArchiveIndex::Scan(const std::filesystem::path& folder) {
  std::lock_guard guard(mutex_);
  return Catalog(folder, [this](const std::filesystem::path& path) -> Result<ImageArchive> {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    const auto modified = std::filesystem::last_write_time(path, ec);
    if (auto it = seen_.find(path);
        it != seen_.end() && it->second.size == size && it->second.modified == modified) {
      return it->second.archive;
    }
    auto archive = InspectArchive(path);
    seen_.insert_or_assign(path, Seen{size, modified, archive});
    return archive;
  });
}

}  // namespace vmlab::reconcilers::cache
