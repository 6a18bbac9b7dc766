// `vmlab get` and `vmlab describe`: read labs from a running controller's
// HTTP API and print them for people (table, describe) or programs (json, yaml).
#pragma once

#include <ostream>
#include <string>

namespace vmlab::controller {

inline constexpr const char* kDefaultServer = "http://127.0.0.1:9440";

struct GetOptions {
  std::string name;              // empty: all labs
  std::string output = "table";  // table | json | yaml
  std::string server = kDefaultServer;
  std::string token_file;  // the controller's bearer token, if it requires one
};

struct DescribeOptions {
  std::string name;
  std::string server = kDefaultServer;
  std::string token_file;
};

// Exit codes: 0 done, 1 the lab does not exist or the controller answered an
// error, 2 the controller cannot be reached.
[[nodiscard]] int RunGet(const GetOptions& options, std::ostream& out, std::ostream& err);
[[nodiscard]] int RunDescribe(const DescribeOptions& options, std::ostream& out, std::ostream& err);

}  // namespace vmlab::controller
