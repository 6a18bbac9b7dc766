// Which files of a watch folder are manifests.
//
// Shared by `vmlab validate DIR` and the controller's folder watcher so both
// read the same files: *.yaml and *.yml, except dotfiles and the swap, backup
// and temporary files that editors write beside the file being edited.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "crds/labcluster_parse.h"
#include "crds/result.h"

namespace vmlab::controller {

enum class FileKind {
  kManifest,    // read it
  kHidden,      // a dotfile
  kEditorTemp,  // swap, backup or temporary file of an editor
  kNotYaml,     // another extension
};

[[nodiscard]] FileKind ClassifyFileName(std::string_view name);

// A short reason for skipping a file of `kind`, for messages ("editor swap file").
[[nodiscard]] std::string_view SkipReason(FileKind kind);

// Reads and parses one manifest file, naming it `label` in diagnostics. A file
// over crds::kMaxManifestBytes is refused unread: one invalid document that
// says so, not an error. An unreadable file is an error.
[[nodiscard]] Result<std::vector<crds::ParsedDocument>> LoadManifestFile(
    const std::filesystem::path& path, const std::string& label);

}  // namespace vmlab::controller
