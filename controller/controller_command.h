// `vmlab controller`: runs the controller until SIGTERM or SIGINT.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "controller/clock.h"

namespace vmlab::controller {

struct ControllerOptions {
  std::filesystem::path watch;
  std::string libvirt_uri = "qemu:///system";
  std::filesystem::path state_dir = "/var/lib/vmlab";
  std::string listen = "127.0.0.1:9440";
  // A bearer token every API and /metrics request must carry (/healthz and
  // /readyz excepted); required to listen beyond loopback.
  std::filesystem::path api_token_file;
  int workers = 2;
  int parallel_nodes = 8;  // nodes of one lab created or changed at once
  Duration resync = std::chrono::seconds(60);
  Duration debounce = std::chrono::milliseconds(200);
  Duration deletion_grace = std::chrono::seconds(30);
  Duration shutdown_timeout = std::chrono::seconds(30);
  Duration drain_timeout = std::chrono::minutes(10);      // a blocked drain is reported after this
  Duration reconcile_timeout = std::chrono::minutes(10);  // a longer reconcile is reported
  std::string log_level = "info";
  std::string log_format = "logfmt";  // logfmt | json
  int progress_port = 9441;           // nodes report on each lab's gateway; 0: not at all
  bool simulate_guests = false;       // libvirt test driver only
  double simulate_speed = 1;          // simulated phase durations divided by this; 0: instant
  std::string apt_cache = "managed";  // managed | off | http://URL of an existing apt proxy
  int apt_cache_port = 3142;          // managed: apt-cacher-ng's port on each lab gateway
  bool cache_warming = true;          // fetch each lab's packages and images into the caches early
  std::string image_cache = "managed";        // managed | off: docker-registry mirrors per upstream
  int image_cache_port = 5001;                // managed: first of three ports on each lab gateway
  std::vector<std::string> registry_mirrors;  // UPSTREAM=URL of existing mirrors
  std::vector<std::string> registry_upstreams;  // UPSTREAM=URL managed mirrors fetch from
  // Base of the Kubernetes package repositories (vM/deb/ is appended).
  std::string kubernetes_packages = "https://pkgs.k8s.io/core:/stable:/";
};

// Returns the process exit code: 0 after a clean shutdown, 1 when the
// controller cannot start (state dir locked or unusable, listener busy) or
// in-flight work did not finish within the shutdown timeout.
[[nodiscard]] int RunController(const ControllerOptions& options);

}  // namespace vmlab::controller
