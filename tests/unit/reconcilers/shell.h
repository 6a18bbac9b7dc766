// Runs a shell command in a test and returns its standard output (and, on a
// non-zero exit, a test failure naming the command).
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>

namespace vmlab::testing_support {

inline std::string Shell(const std::string& command, int* exit_status = nullptr) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) {
    ADD_FAILURE() << "cannot run " << command;
    return "";
  }
  std::string out;
  std::array<char, 4096> buffer{};
  while (const std::size_t n = fread(buffer.data(), 1, buffer.size(), pipe.get())) {
    out.append(buffer.data(), n);
  }
  const int status = pclose(pipe.release());
  if (exit_status) {
    *exit_status = status;
  } else {
    EXPECT_EQ(status, 0) << command << "\n" << out;
  }
  return out;
}

}  // namespace vmlab::testing_support
