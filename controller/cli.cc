#include "controller/cli.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "controller/client_commands.h"
#include "controller/config_file.h"
#include "controller/controller_command.h"
#include "controller/duration.h"
#include "controller/render_command.h"
#include "controller/validate_command.h"
#include "controller/version.h"
#include "crds/labcluster_types.h"
#include "crds/suggest.h"

namespace vmlab::controller {
namespace {

// The config file given to `vmlab controller` and the entries it supplied.
struct ConfigSource {
  std::string path;
  std::vector<ConfigEntry> entries;  // those that became --KEY=VALUE arguments
};

// With `controller ... --config FILE` in `args`, inserts the file's options
// as arguments after "controller", skipping those the command line gives
// (it wins). Returns false after printing why the file cannot be used.
bool ApplyConfigFile(const CLI::App& controller_cmd, std::vector<std::string>& args,
                     ConfigSource& config, std::ostream& err) {
  if (args.empty() || args[0] != "controller") return true;
  bool given_config = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") return true;  // help whatever the file says
    if (args[i] == "--config" && i + 1 < args.size()) {
      config.path = args[i + 1];
      given_config = true;
    }
    if (args[i].starts_with("--config=")) {
      config.path = args[i].substr(9);
      given_config = true;
    }
  }
  if (!given_config) return true;
  if (config.path.empty()) {
    fmt::print(err, "vmlab controller: --config: give the path of a settings file\n");
    return false;
  }
  auto entries = ReadConfigFile(config.path);
  if (!entries) {
    fmt::print(err, "vmlab controller: {}\n", entries.error().message);
    return false;
  }
  const auto given = [&args](const std::string& name) {
    return std::any_of(args.begin() + 1, args.end(), [&](const std::string& a) {
      return a == name || a.starts_with(name + "=");
    });
  };
  std::vector<std::string_view> names;  // what a file may set, for "did you mean"
  for (const CLI::Option* option : controller_cmd.get_options()) {
    for (const auto& name : option->get_lnames()) {
      if (name != "config" && name != "help") names.push_back(name);
    }
  }
  std::vector<std::string> expanded;
  for (auto& entry : *entries) {
    const std::string flag = "--" + entry.key;
    const bool settable = std::find(names.begin(), names.end(), entry.key) != names.end();
    const CLI::Option* option = settable ? controller_cmd.get_option_no_throw(flag) : nullptr;
    const auto where =
        fmt::format("{}:{}:{}: error: {}", config.path, entry.line, entry.column, entry.key);
    if (option == nullptr) {
      const auto hint = crds::SuggestClosest(entry.key, names);
      fmt::print(
          err, "vmlab controller: {}: not an option of `vmlab controller`{}\n", where,
          hint ? fmt::format(" (did you mean `{}`?)", *hint) : "; see `vmlab controller --help`");
      return false;
    }
    if (given(flag)) continue;  // the command line wins
    if (entry.sequence && option->get_expected_max() <= 1) {
      fmt::print(err, "vmlab controller: {}: takes one value, not a list\n", where);
      return false;
    }
    if (option->get_expected_max() == 0) {  // a flag: true or false
      if (entry.values[0] != "true" && entry.values[0] != "false") {
        fmt::print(err, "vmlab controller: {}: give true or false\n", where);
        return false;
      }
      if (entry.values[0] == "true") expanded.push_back(flag);
      continue;
    }
    for (const auto& value : entry.values) expanded.push_back(flag + "=" + value);
    config.entries.push_back(std::move(entry));
  }
  args.insert(args.begin() + 1, expanded.begin(), expanded.end());
  return true;
}

}  // namespace

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

  RenderOptions render;
  CLI::App* render_cmd = app.add_subcommand("render",
                                            "Print the libvirt XML and cloud-init seeds vmlab "
                                            "would make for a manifest; touches nothing");
  render_cmd->add_option("PATH", render.path, "A manifest file")->required();
  render_cmd->add_option("--node", render.node, "Only this node's artifacts");
  render_cmd
      ->add_option("--what", render.what,
                   "network, domain, seed (meta-data, network-config, user-data), user-data, "
                   "all, or downloads (the packages and images each role's nodes fetch)")
      ->capture_default_str()
      ->check(CLI::IsMember({"network", "domain", "seed", "user-data", "all", "downloads"}));
  render_cmd->add_option("--state-dir", render.state_dir, "State dir the paths are rendered for")
      ->capture_default_str();
  render_cmd->add_flag("--show-secrets", render.show_secrets,
                       "Print private keys, the bootstrap token and passwords in the seeds");
  render_cmd->add_option("--domain-type", render.domain_type, "kvm or qemu")
      ->capture_default_str()
      ->check(CLI::IsMember({"kvm", "qemu"}));

  ControllerOptions controller;
  std::string resync = "60s";
  std::string debounce = "200ms";
  std::string grace = "30s";
  std::string shutdown_timeout = "30s";
  std::string drain_timeout = "10m";
  std::string reconcile_timeout = "10m";
  CLI::App* controller_cmd =
      app.add_subcommand("controller", "Run the controller on a watch folder of manifests");
  std::string config_file;
  controller_cmd->add_option(
      "--config", config_file,
      "Read these options from a YAML file of long option names and values (e.g. `watch: "
      "/var/lib/vmlab/labs`, a list for a repeatable option); options given here override it");
  controller_cmd->add_option("--watch", controller.watch, "Folder of LabCluster manifests")
      ->required();
  controller_cmd->add_option("--libvirt", controller.libvirt_uri, "libvirt connection URI")
      ->capture_default_str();
  controller_cmd
      ->add_option("--state-dir", controller.state_dir,
                   "Where vmlab keeps what it cannot observe (locked while running)")
      ->capture_default_str();
  controller_cmd
      ->add_option("--listen", controller.listen,
                   "HOST:PORT of the HTTP API and /metrics (port 0: any free port)")
      ->capture_default_str();
  controller_cmd->add_option(
      "--api-token-file", controller.api_token_file,
      "A file whose first line is a bearer token every API and /metrics request must carry "
      "(/healthz and /readyz excepted); needed to listen on a non-loopback address");
  controller_cmd->add_option("--workers", controller.workers, "Labs reconciled at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  controller_cmd
      ->add_option("--parallel-nodes", controller.parallel_nodes,
                   "Nodes of one lab created at once (1: one after another)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  controller_cmd
      ->add_option("--progress-port", controller.progress_port,
                   "Port nodes report their phases to, on each lab network's gateway (0: none)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  controller_cmd
      ->add_option("--apt-cache", controller.apt_cache,
                   "apt cache for the labs' nodes: managed (vmlab runs apt-cacher-ng on each lab "
                   "gateway), off, or the http:// URL of an existing apt proxy")
      ->capture_default_str();
  controller_cmd
      ->add_option("--apt-cache-port", controller.apt_cache_port,
                   "With --apt-cache managed: apt-cacher-ng's port on each lab gateway "
                   "(apt-cacher-ng 3.7 binds no port above 32767)")
      ->capture_default_str()
      ->check(CLI::Range(1, 32767));
  controller_cmd
      ->add_option("--cache-warming", controller.cache_warming,
                   "Fetch each lab's Kubernetes packages and images into the managed caches "
                   "while its VMs boot (true|false)")
      ->capture_default_str();
  controller_cmd
      ->add_option("--image-cache", controller.image_cache,
                   "Container image cache for the labs' nodes: managed (vmlab runs a "
                   "docker-registry pull-through mirror per upstream: registry.k8s.io, docker.io, "
                   "quay.io) or off; nodes fall back to the upstream when a mirror fails")
      ->capture_default_str();
  controller_cmd
      ->add_option("--image-cache-port", controller.image_cache_port,
                   "With --image-cache managed: the mirrors' ports on each lab gateway, this one "
                   "for registry.k8s.io, the next for docker.io, the one after for quay.io")
      ->capture_default_str()
      ->check(CLI::Range(1, 65533));
  controller_cmd->add_option(
      "--registry-mirror", controller.registry_mirrors,
      "UPSTREAM=URL: the labs' nodes pull UPSTREAM's images through this existing mirror "
      "(instead of a managed one); repeatable");
  controller_cmd->add_option(
      "--registry-upstream", controller.registry_upstreams,
      "UPSTREAM=URL: the managed mirror of UPSTREAM fetches from URL instead of the public "
      "registry (e.g. a closer mirror); repeatable");
  controller_cmd
      ->add_option("--kubernetes-packages", controller.kubernetes_packages,
                   "Base URL of the Kubernetes package repositories nodes install kubelet, "
                   "kubeadm and kubectl from (vMINOR/deb/ is appended): a mirror of pkgs.k8s.io")
      ->capture_default_str();
  controller_cmd->add_flag("--simulate-guests", controller.simulate_guests,
                           "Play every node's bootstrap phases in vmlab (demo and tests; needs "
                           "a test: libvirt URI)");
  controller_cmd
      ->add_option("--simulate-speed", controller.simulate_speed,
                   "With --simulate-guests: phase durations divided by this (0: instant)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10000.0));
  controller_cmd
      ->add_option("--drain-timeout", drain_timeout,
                   "How long a worker's drain may be blocked (PodDisruptionBudget) before it is "
                   "reported as timed out; the VM is kept either way")
      ->capture_default_str();
  controller_cmd
      ->add_option("--reconcile-timeout", reconcile_timeout,
                   "A reconcile running longer is reported (log, Warning event, "
                   "controller_runtime_reconcile_timeouts_total) and another worker takes the "
                   "other labs meanwhile")
      ->capture_default_str();
  controller_cmd->add_option("--resync", resync, "Reconcile every lab this often")
      ->capture_default_str();
  controller_cmd
      ->add_option("--debounce", debounce, "Quiet period after a file changes before it is read")
      ->capture_default_str();
  controller_cmd
      ->add_option("--deletion-grace", grace, "How long a lab outlives its removed manifest")
      ->capture_default_str();
  controller_cmd
      ->add_option("--shutdown-timeout", shutdown_timeout,
                   "On SIGTERM/SIGINT, how long in-flight work may take")
      ->capture_default_str();
  controller_cmd->add_option("--log-level", controller.log_level, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  controller_cmd
      ->add_option("--log-format", controller.log_format,
                   "logfmt or json: one record per line on stderr (ts, level, msg, and lab and "
                   "reconcile on a reconcile's lines)")
      ->capture_default_str()
      ->check(CLI::IsMember({"logfmt", "json"}));
  controller_cmd->footer(
      "Durations: 200ms, 30s, 5m, 1h or sums such as 1m30s. The API serves GET "
      "/api/v1/labclusters[/NAME[/events]], /healthz, /readyz and /metrics.");

  GetOptions get;
  CLI::App* get_cmd =
      app.add_subcommand("get", "List labs, or show one, from a running controller");
  get_cmd->add_option("NAME", get.name, "A lab (default: all)");
  get_cmd->add_option("-o,--output", get.output, "table, json or yaml")
      ->capture_default_str()
      ->check(CLI::IsMember({"table", "json", "yaml"}));
  get_cmd->add_option("--server", get.server, "The controller's API")->capture_default_str();
  get_cmd->add_option("--token-file", get.token_file,
                      "The controller's bearer token (its --api-token-file), if it requires one");
  get_cmd->footer("Exit status: 0 done, 1 no such lab or an API error, 2 controller unreachable.");

  DescribeOptions describe;
  CLI::App* describe_cmd =
      app.add_subcommand("describe", "Show a lab's spec, conditions, nodes and recent events");
  describe_cmd->add_option("NAME", describe.name, "The lab")->required();
  describe_cmd->add_option("--token-file", describe.token_file,
                           "The controller's bearer token (its --api-token-file), if it requires "
                           "one");
  describe_cmd->add_option("--server", describe.server, "The controller's API")
      ->capture_default_str();
  describe_cmd->footer(
      "Exit status: 0 done, 1 no such lab or an API error, 2 controller unreachable.");

  CLI::App* version_cmd = app.add_subcommand("version", "Print vmlab's version and build commit");

  // `vmlab controller --config FILE`: the file's options go in front of the
  // command line's, except those the command line gives itself.
  std::vector<std::string> args(argv + 1, argv + argc);
  ConfigSource config;
  if (!ApplyConfigFile(*controller_cmd, args, config, err)) return kExitUsage;

  try {
    // CLI11 takes the arguments in reverse order.
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << app.help();  // the selected subcommand's help, if one was given
    return kExitValid;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return kExitValid;
  } catch (const CLI::ParseError& e) {
    // A bad value from the config file is reported at its line.
    const std::string message = e.what();
    for (const auto& entry : config.entries) {
      const std::string flag = "--" + entry.key;
      const auto at = message.find(flag);
      const auto after = at == std::string::npos ? '\0' : message[at + flag.size()];
      if (at != std::string::npos && !std::isalnum(static_cast<unsigned char>(after)) &&
          after != '-') {
        fmt::print(err, "vmlab controller: {}:{}:{}: error: {}: {}\n", config.path, entry.line,
                   entry.column, entry.key, message);
        return kExitUsage;
      }
    }
    fmt::print(err, "vmlab: {}\nRun `vmlab --help` for usage.\n", message);
    return kExitUsage;
  }

  if (validate_cmd->parsed()) return RunValidate(validate, out, err);
  if (controller_cmd->parsed()) {
    for (auto [text, target] :
         {std::pair{&resync, &controller.resync}, std::pair{&debounce, &controller.debounce},
          std::pair{&grace, &controller.deletion_grace},
          std::pair{&shutdown_timeout, &controller.shutdown_timeout},
          std::pair{&drain_timeout, &controller.drain_timeout},
          std::pair{&reconcile_timeout, &controller.reconcile_timeout}}) {
      auto parsed = ParseDuration(*text);
      if (!parsed) {
        fmt::print(err, "vmlab controller: {}\n", parsed.error().message);
        return kExitUsage;
      }
      *target = *parsed;
    }
    return RunController(controller);
  }
  if (render_cmd->parsed()) return RunRender(render, out, err);
  if (get_cmd->parsed()) return RunGet(get, out, err);
  if (describe_cmd->parsed()) return RunDescribe(describe, out, err);
  if (version_cmd->parsed()) {
    fmt::print(out, "vmlab {} (commit {}, API {})\n", kVersion, kGitCommit, crds::kApiVersion);
    return kExitValid;
  }
  return kExitUsage;  // require_subcommand(1) makes this unreachable
}

}  // namespace vmlab::controller
