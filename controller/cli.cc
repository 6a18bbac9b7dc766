#include "controller/cli.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <CLI/CLI.hpp>

#include "controller/validate_command.h"
#include "controller/version.h"
#include "crds/labcluster_types.h"

namespace vmlab::controller {

int RunCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{
      "vmlab turns LabCluster manifests into Kubernetes labs on libvirt VMs and keeps them so.",
      "vmlab"};
  app.require_subcommand(1);
  app.footer("Run `vmlab COMMAND --help` for the options of a command.");

  ValidateOptions validate;
  CLI::App* validate_cmd =
      app.add_subcommand("validate", "Check LabCluster manifests; touches nothing");
  validate_cmd->footer(
      "Folders are read one level deep (*.yaml, *.yml; dotfiles and editor swap or backup files "
      "are skipped and listed).\nAll documents are checked together: duplicate names and "
      "overlapping lab networks across files are errors.\nEach problem is one line on stderr: "
      "PATH:LINE:COL: error: FIELD.PATH: message\nExit status: 0 all valid (warnings allowed), "
      "1 some invalid, 2 usage or I/O error.");
  validate_cmd->add_option("PATH", validate.paths, "Manifest files or folders")->required();
  validate_cmd->add_flag("-q,--quiet", validate.quiet,
                         "Print only problems: no summary, no skipped-file notes");

  CLI::App* version_cmd = app.add_subcommand("version", "Print vmlab's version and build commit");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out << app.help();  // the selected subcommand's help, if one was given
    return kExitValid;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return kExitValid;
  } catch (const CLI::ParseError& e) {
    fmt::print(err, "vmlab: {}\nRun `vmlab --help` for usage.\n", e.what());
    return kExitUsage;
  }

  if (validate_cmd->parsed()) return RunValidate(validate, out, err);
  if (version_cmd->parsed()) {
    fmt::print(out, "vmlab {} (commit {}, API {})\n", kVersion, kGitCommit, crds::kApiVersion);
    return kExitValid;
  }
  return kExitUsage;  // require_subcommand(1) makes this unreachable
}

}  // namespace vmlab::controller
