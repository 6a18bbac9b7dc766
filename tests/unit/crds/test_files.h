// Helpers for tests that read files of the source tree.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace vmlab::testing_support {

inline const std::filesystem::path kSourceDir = VMLAB_SOURCE_DIR;

inline std::string ReadSourceFile(const std::filesystem::path& relative) {
  std::ifstream in(kSourceDir / relative, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// True when golden files should be rewritten (VMLAB_UPDATE_GOLDEN=1).
inline bool UpdateGolden() { return std::getenv("VMLAB_UPDATE_GOLDEN") != nullptr; }

inline void WriteSourceFile(const std::filesystem::path& relative, const std::string& text) {
  std::ofstream(kSourceDir / relative, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace vmlab::testing_support
