// docs/metrics.md lists every metric family the controller's registry
// exports, and nothing it does not: the families are read from the
// registry's own exposition (# TYPE lines) with every metrics class vmlab
// registers, the documented names from the doc's tables.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "metrics/bootstrap_metrics.h"
#include "metrics/cache_metrics.h"
#include "metrics/controller_metrics.h"
#include "metrics/hypervisor_metrics.h"
#include "metrics/lab_metrics.h"
#include "metrics/registry.h"

namespace vmlab::metrics {
namespace {

std::set<std::string> ExportedFamilies() {
  Registry registry;
  ControllerMetrics controller(registry, "labcluster");
  LabMetrics labs(registry);
  HypervisorMetrics hypervisor(registry);
  BootstrapMetrics bootstrap(registry);
  CacheMetrics cache(registry);
  // Per-lab families have series once a lab exists.
  labs.SetCondition("lab", "Ready", "True");
  labs.SetNodes("lab", {{"control-plane", "running"}});
  labs.SetActiveDrift("lab", {"DomainStopped"});
  labs.CountDriftDetected("lab", "DomainStopped");
  labs.CountRemediation("lab", "DomainStopped", "success");
  std::set<std::string> families;
  std::istringstream text(registry.Serialize());
  for (std::string line; std::getline(text, line);) {
    if (!line.starts_with("# TYPE ")) continue;
    families.insert(line.substr(7, line.find(' ', 7) - 7));
  }
  return families;
}

std::set<std::string> DocumentedFamilies() {
  std::ifstream in(std::string(VMLAB_SOURCE_DIR) + "/docs/metrics.md");
  std::stringstream doc;
  doc << in.rdbuf();
  std::set<std::string> names;
  const std::regex name(R"(`((vmlab|controller_runtime|workqueue|process)_[a-z_]+)`)");
  std::istringstream lines(doc.str());
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("| `")) continue;  // table rows name families in their first cell
    const std::string first = line.substr(0, line.find(" |", 2));
    for (auto it = std::sregex_iterator(first.begin(), first.end(), name);
         it != std::sregex_iterator(); ++it) {
      names.insert((*it)[1].str());
    }
  }
  return names;
}

TEST(MetricsDocTest, EveryExportedFamilyIsDocumentedAndNothingElse) {
  const auto exported = ExportedFamilies();
  const auto documented = DocumentedFamilies();
  ASSERT_GT(exported.size(), 20u);
  ASSERT_GT(documented.size(), 20u);
  for (const auto& family : exported) {
    EXPECT_TRUE(documented.contains(family)) << family << " is exported but not in docs/metrics.md";
  }
  for (const auto& family : documented) {
    EXPECT_TRUE(exported.contains(family)) << family << " is in docs/metrics.md but not exported";
  }
}

}  // namespace
}  // namespace vmlab::metrics
