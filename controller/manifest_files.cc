#include "controller/manifest_files.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace vmlab::controller {

FileKind ClassifyFileName(std::string_view name) {
  if (name.empty() || name.starts_with('.'))
    return FileKind::kHidden;  // also vim's .x.swp, emacs' .#x
  // Emacs auto-save (#x#), backups (x~), vim's write probe (4913), and the
  // suffixes editors and tools use for copies.
  if ((name.starts_with('#') && name.ends_with('#')) || name.ends_with('~') || name == "4913") {
    return FileKind::kEditorTemp;
  }
  for (const std::string_view suffix :
       {".swp", ".swo", ".swx", ".bak", ".orig", ".tmp", ".rej", ".dpkg-new", ".dpkg-old"}) {
    if (name.ends_with(suffix)) return FileKind::kEditorTemp;
  }
  if (name.ends_with(".yaml") || name.ends_with(".yml")) return FileKind::kManifest;
  return FileKind::kNotYaml;
}

std::string_view SkipReason(FileKind kind) {
  switch (kind) {
    case FileKind::kManifest:
      return "manifest";
    case FileKind::kHidden:
      return "hidden file";
    case FileKind::kEditorTemp:
      return "editor swap, backup or temporary file";
    case FileKind::kNotYaml:
      return "not a .yaml or .yml file";
  }
  return "";
}

Result<std::vector<crds::ParsedDocument>> LoadManifestFile(const std::filesystem::path& path,
                                                           const std::string& label) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (auto problem = ec ? std::nullopt : crds::CheckManifestSize(size)) {
    crds::ParsedDocument refused;
    refused.file = label;
    refused.diagnostics.push_back({crds::Severity::kError, label, {1, 1}, "", *problem});
    return std::vector<crds::ParsedDocument>{std::move(refused)};
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot read {}: {}", path.string(), std::strerror(errno)));
  }
  return crds::ParseManifests(label, text.str());
}

}  // namespace vmlab::controller
