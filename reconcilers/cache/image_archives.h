// Container image archives a lab provides (`spec.cache.imageArchives`: a
// host folder of `docker save` tarballs or OCI archives, as the seed lab's
// cache held by hand), identified by their content — the image references
// and the digests inside — never by file name: a renamed or copied archive is
// the same archive, and the seed's mismatch of tarball names between its
// control-plane and worker scripts cannot happen. Read with libarchive;
// compressed archives are refused with a clear message (containerd 1.6's
// `ctr images import` cannot read them).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "crds/result.h"

namespace vmlab::reconcilers::cache {

struct ImageArchive {
  std::filesystem::path path;
  std::string format;            // "docker-archive" (manifest.json) or "oci-archive" (index.json)
  std::set<std::string> images;  // normalised references (docker.io/library/... as containerd)
  std::string id;                // sha256 hex of the sorted "reference@digest" lines
  std::uintmax_t size = 0;
};

// What `path` holds; kInvalidArgument when it is no image archive (the
// message says why).
[[nodiscard]] Result<ImageArchive> InspectArchive(const std::filesystem::path& path);

struct ArchiveCatalog {
  std::vector<ImageArchive> archives;  // one per content id, sorted by id
  std::vector<std::string> problems;   // files that are not image archives, duplicates
};

// Every archive in `folder` (not recursive; dotfiles skipped).
[[nodiscard]] Result<ArchiveCatalog> ScanArchives(const std::filesystem::path& folder);

// ScanArchives that remembers: an archive whose path, size and modification
// time are unchanged is not read again (reconciles ask often; archives are
// large). Thread-safe.
class ArchiveIndex {
 public:
  [[nodiscard]] Result<ArchiveCatalog> Scan(const std::filesystem::path& folder);

 private:
  struct Seen {
    std::uintmax_t size = 0;
    std::filesystem::file_time_type modified;
    Result<ImageArchive> archive;
  };
  std::mutex mutex_;
  std::map<std::filesystem::path, Seen> seen_;
};

}  // namespace vmlab::reconcilers::cache
