#include "controller/manifest_files.h"

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

}  // namespace vmlab::controller
