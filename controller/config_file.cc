#include "controller/config_file.h"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

namespace vmlab::controller {
namespace {

Error At(const std::filesystem::path& path, const YAML::Mark& mark, std::string_view key,
         std::string_view message) {
  return {ErrorCode::kInvalidArgument,
          fmt::format("{}:{}:{}: error: {}{}{}", path.string(), mark.line + 1, mark.column + 1, key,
                      key.empty() ? "" : ": ", message)};
}

// Parser events, ignored but for where documents start.
class Ignore : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { last = mark; }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { last = mark; }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    last = mark;
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    last = mark;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    last = mark;
  }
  void OnMapEnd() override {}
  YAML::Mark last;
  std::vector<YAML::Mark> starts;
};

}  // namespace

Result<std::vector<ConfigEntry>> ReadConfigFile(const std::filesystem::path& path) {
  std::error_code ec;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || !std::filesystem::is_regular_file(path, ec)) {
    return std::unexpected(
        Error{ErrorCode::kNotFound,
              fmt::format("{}: cannot read the config file: check the path and its permissions",
                          path.string())});
  }
  YAML::Node root;
  try {
    root = YAML::Load(text.str());
    // Not LoadAll: yaml-cpp 0.7's never ends on some malformed streams (see
    // crds/labcluster_parse.cc). A second document is found by the parser.
    std::istringstream again(text.str());
    YAML::Parser parser(again);
    Ignore ignore;
    if (parser.HandleNextDocument(ignore) && parser.HandleNextDocument(ignore)) {
      return std::unexpected(At(path, ignore.starts.empty() ? ignore.last : ignore.starts.back(),
                                "", "one YAML document expected; merge the documents into one"));
    }
  } catch (const YAML::ParserException& e) {
    return std::unexpected(At(path, e.mark, "", e.msg + " (the config file is YAML)"));
  }
  std::vector<ConfigEntry> entries;
  if (root.IsNull()) return entries;  // an empty file configures nothing
  if (!root.IsMap()) {
    return std::unexpected(
        At(path, root.Mark(), "",
           "expected a mapping of option names to values, e.g. `watch: /var/lib/vmlab/labs`"));
  }
  std::set<std::string> seen;
  for (const auto& item : root) {
    if (!item.first.IsScalar()) {
      return std::unexpected(At(path, item.first.Mark(), "", "an option name must be a string"));
    }
    ConfigEntry entry;
    entry.key = item.first.Scalar();
    entry.line = item.first.Mark().line + 1;
    entry.column = item.first.Mark().column + 1;
    if (entry.key.starts_with("--")) {
      return std::unexpected(
          At(path, item.first.Mark(), entry.key,
             fmt::format("write the option name without dashes: `{}:`", entry.key.substr(2))));
    }
    if (!seen.insert(entry.key).second) {
      return std::unexpected(At(path, item.first.Mark(), entry.key,
                                "given twice; keep one (a list for several values)"));
    }
    const YAML::Node& value = item.second;
    if (value.IsScalar()) {
      entry.values.push_back(value.Scalar());
    } else if (value.IsSequence()) {
      entry.sequence = true;
      for (const auto& element : value) {
        if (!element.IsScalar()) {
          return std::unexpected(
              At(path, element.Mark(), entry.key, "a list of plain values is expected here"));
        }
        entry.values.push_back(element.Scalar());
      }
    } else {
      return std::unexpected(At(path, value.IsNull() ? item.first.Mark() : value.Mark(), entry.key,
                                value.IsNull() ? "has no value; give one or remove the line"
                                               : "expected a value or a list of values"));
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

}  // namespace vmlab::controller
