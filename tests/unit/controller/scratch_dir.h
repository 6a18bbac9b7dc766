// A scratch folder under the system temp dir, removed when the test ends.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace vmlab::testing_support {

class ScratchDir {
 public:
  ScratchDir()
      : path_(std::filesystem::temp_directory_path() /
              ("vmlab-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  void Write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::binary | std::ios::trunc) << text;
  }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

// A valid LabCluster manifest.
inline std::string LabManifest(const std::string& name, const std::string& cidr, int workers = 1) {
  return "apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata:\n  name: " + name +
         "\nspec:\n  kubernetes:\n    version: \"1.30.4\"\n  network:\n    cidr: " + cidr +
         "\n  workers:\n    replicas: " + std::to_string(workers) + "\n";
}

}  // namespace vmlab::testing_support
