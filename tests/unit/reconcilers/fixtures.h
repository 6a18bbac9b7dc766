// Test helpers shared by the reconciler tests: manifests from the source
// tree, and golden files (VMLAB_UPDATE_GOLDEN=1 rewrites them).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "crds/labcluster_parse.h"

namespace vmlab::testing_support {

inline const std::filesystem::path kSourceDir = VMLAB_SOURCE_DIR;

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline std::string ReadSource(const std::string& relative) {
  return ReadFile(kSourceDir / relative);
}

// The first document of a manifest text, which must be valid.
inline crds::LabCluster ParseLab(const std::string& name, const std::string& text) {
  auto docs = crds::ParseManifests(name, text);
  EXPECT_TRUE(docs.at(0).valid()) << text;
  return *docs.at(0).object;
}

// A manifest of the source tree (examples/, tests/fixtures/valid/).
inline crds::LabCluster LoadLab(const std::string& relative) {
  return ParseLab(relative, ReadSource(relative));
}

inline void ExpectGolden(const std::string& relative, const std::string& actual) {
  const auto path = kSourceDir / relative;
  if (std::getenv("VMLAB_UPDATE_GOLDEN")) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << actual;
    return;
  }
  EXPECT_EQ(actual, ReadSource(relative))
      << relative << " differs; VMLAB_UPDATE_GOLDEN=1 rewrites it";
}

// The value of one sample (`series` as exposed, labels included) in a
// Prometheus text exposition; -1 when absent. Matches whole lines only, so a
// family's # HELP line is never taken for its sample.
inline double Metric(const std::string& text, const std::string& series) {
  const auto at = ("\n" + text).find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 1));
}

}  // namespace vmlab::testing_support
