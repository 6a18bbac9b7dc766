// Infrastructure reconcile on libvirt's test driver: time to converge a new
// lab of 1, 10 and 50 nodes, and a no-op pass over 100 converged labs of 10
// nodes each (what a resync costs when nothing changed). Medians of 5 runs.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "crds/canonical.h"
#include "crds/labcluster_parse.h"
#include "reconcilers/bootstrap/user_data.h"
#include "reconcilers/infrastructure/libvirt_hypervisor.h"
#include "reconcilers/infrastructure_reconciler.h"

namespace {

using namespace vmlab;
using Clock = std::chrono::steady_clock;

crds::LabCluster Lab(const std::string& name, int index, int workers) {
  const std::string text = fmt::format(
      "apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata: {{name: {}}}\nspec:\n"
      "  kubernetes: {{version: \"1.30.4\"}}\n  network: {{cidr: 172.{}.{}.0/24}}\n"
      "  controlPlane: {{replicas: 1}}\n  workers: {{replicas: {}}}\n",
      name, 16 + index / 256, index % 256, workers);
  return *crds::ParseManifests("bench.yaml", text).at(0).object;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main() {
  const auto root =
      std::filesystem::temp_directory_path() / fmt::format("vmlab-infra-bench-{}", getpid());
  reconcilers::infrastructure::LibvirtConnection connection("test:///default", nullptr);
  if (!connection.Ensure()) return 1;
  reconcilers::infrastructure::LibvirtHypervisor hypervisor(connection);
  reconcilers::InfrastructureReconciler infrastructure(hypervisor, root.string());

  // A lab's secrets (3 CAs, service-account keys, admin certificate: 5 RSA
  // keys) are made once per lab; timed here, then one set serves every lab
  // below so that the convergence figures are the reconcile's alone.
  reconcilers::bootstrap::SecretStore store(root);
  std::vector<double> secrets_ms;
  std::optional<reconcilers::bootstrap::LabSecrets> secrets;
  for (int run = 0; run < 5; ++run) {
    const auto lab = Lab(fmt::format("pki{}", run), 0, 0);
    const auto start = Clock::now();
    auto made = store.LoadOrCreate(lab, std::chrono::system_clock::now());
    secrets_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    if (!made) return 1;
    secrets = std::move(*made);
  }
  std::printf("make a lab's secrets (5 RSA-2048 keys, 4 certificates): median %.0f ms\n",
              Median(secrets_ms));
  const crds::LabCluster* current = nullptr;
  const reconcilers::UserDataFn user_data = [&](const crds::PlannedNode& node) {
    return Result<std::string>(
        reconcilers::bootstrap::RenderUserData(*current, node, *secrets, {}));
  };

  int next = 0;
  for (const int nodes : {1, 10, 50}) {
    std::vector<double> ms;
    for (int run = 0; run < 5; ++run) {
      const std::string name = fmt::format("conv{}", next);
      const auto lab = Lab(name, next++, nodes - 1);
      const std::string hash = crds::SpecHash(lab.spec);
      current = &lab;
      const auto start = Clock::now();
      auto outcome = infrastructure.Converge(name, &lab, hash, false, {}, user_data);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      if (!outcome || !outcome->converged) {
        std::fprintf(stderr, "lab %s did not converge\n", name.c_str());
        return 1;
      }
      (void)infrastructure.Converge(name, nullptr, "", false, {});  // clean up
    }
    std::printf("converge a new lab of %2d nodes (test driver): median %.2f ms\n", nodes,
                Median(ms));
  }

  std::vector<std::pair<std::string, crds::LabCluster>> labs;
  for (int i = 0; i < 100; ++i) {
    const std::string name = fmt::format("idle{}", i);
    labs.emplace_back(name, Lab(name, 100 + i, 9));
    const auto& lab = labs.back().second;
    current = &lab;
    (void)infrastructure.Converge(name, &lab, crds::SpecHash(lab.spec), false, {}, user_data);
  }
  std::vector<double> pass_ms;
  for (int run = 0; run < 5; ++run) {
    const auto start = Clock::now();
    for (const auto& [name, lab] : labs) {
      current = &lab;
      auto outcome =
          infrastructure.Converge(name, &lab, crds::SpecHash(lab.spec), false, {}, user_data);
      if (!outcome || !outcome->converged || !outcome->created.empty()) return 1;
    }
    pass_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::printf(
      "no-op pass over 100 labs x 10 nodes (1000 domains): median %.1f ms (%.2f ms per lab)\n",
      Median(pass_ms), Median(pass_ms) / 100);
  std::filesystem::remove_all(root);
  return 0;
}
