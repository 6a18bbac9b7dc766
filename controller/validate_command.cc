#include "controller/validate_command.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "controller/manifest_files.h"
#include "crds/canonical.h"
#include "crds/labcluster_parse.h"

namespace vmlab::controller {
namespace {

namespace fs = std::filesystem;

struct Input {
  std::string label;  // the path as the user will recognise it
  fs::path path;
};

}  // namespace

int RunValidate(const ValidateOptions& options, std::ostream& out, std::ostream& err) {
  bool io_error = false;
  std::vector<Input> inputs;
  for (const std::string& arg : options.paths) {
    std::error_code ec;
    const fs::file_status status = fs::status(arg, ec);
    if (ec || !fs::exists(status)) {
      fmt::print(err, "{}: error: no such file or directory\n", arg);
      io_error = true;
      continue;
    }
    if (!fs::is_directory(status)) {
      inputs.push_back({arg, arg});  // a file named explicitly is read whatever its name
      continue;
    }
    std::vector<fs::path> entries;
    for (fs::directory_iterator it(arg, ec), end; !ec && it != end; it.increment(ec)) {
      entries.push_back(it->path());
    }
    if (ec) {
      fmt::print(err, "{}: error: cannot list the folder: {}\n", arg, ec.message());
      io_error = true;
      continue;
    }
    std::sort(entries.begin(), entries.end());
    for (const fs::path& entry : entries) {
      const std::string name = entry.filename().string();
      const FileKind kind = ClassifyFileName(name);
      std::error_code dir_ec;
      if (kind == FileKind::kManifest && fs::is_directory(entry, dir_ec)) {
        if (!options.quiet)
          fmt::print(out, "skipped {}: a folder (folders are not searched)\n", entry.string());
        continue;
      }
      if (kind != FileKind::kManifest) {
        if (!options.quiet) fmt::print(out, "skipped {}: {}\n", entry.string(), SkipReason(kind));
        continue;
      }
      inputs.push_back({entry.string(), entry});
    }
  }

  std::vector<crds::ParsedDocument> documents;
  for (const Input& input : inputs) {
    auto parsed = LoadManifestFile(input.path, input.label);
    if (!parsed) {
      fmt::print(err, "{}: error: {}\n", input.label, parsed.error().message);
      io_error = true;
      continue;
    }
    std::move(parsed->begin(), parsed->end(), std::back_inserter(documents));
  }
  crds::ValidateManifestSet(documents);

  int valid = 0;
  int invalid = 0;
  for (const crds::ParsedDocument& doc : documents) {
    for (const crds::Diagnostic& diagnostic : doc.diagnostics) {
      fmt::print(err, "{}\n", crds::FormatDiagnostic(diagnostic));
    }
    if (doc.valid()) {
      ++valid;
      if (!options.quiet) {
        fmt::print(out, "{}: LabCluster \"{}\" is valid (spec sha256 {})\n", doc.file, doc.name,
                   crds::SpecHash(doc.object->spec).substr(0, 12));
      }
    } else {
      ++invalid;
    }
  }
  if (!options.quiet) {
    fmt::print(out, "{} valid, {} invalid\n", valid, invalid);
  }
  if (io_error) return kExitUsage;
  return invalid > 0 ? kExitInvalid : kExitValid;
}

}  // namespace vmlab::controller
