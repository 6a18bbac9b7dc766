// The manifest corpus under tests/fixtures: every file states, in trailing
// comments, exactly which diagnostics vmlab reports for it:
//
//   # expect error 9:15 spec.workers.replicas [schema]: must be between 0 and 150; got -1
//
// (severity, line:column, field path or "-", an optional [schema] tag for
// rules the CRD schema also enforces, and the message). invalid/ and valid/
// files are checked alone; each folder under sets/ is checked as one set.
// VMLAB_UPDATE_GOLDEN=1 rewrites the expectations from what vmlab reports,
// keeping the [schema] tags of unchanged fields.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "crds/labcluster_parse.h"

namespace vmlab::crds {
namespace {

namespace fs = std::filesystem;

const fs::path kSourceDir = VMLAB_SOURCE_DIR;  // see test_files.h

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Expectation {
  std::string severity;
  SourcePos pos;
  std::string field;  // "-" when the diagnostic has no field
  bool schema = false;
  std::string message;

  // The comparable form, without the [schema] tag.
  [[nodiscard]] std::string Key() const {
    return fmt::format("{} {}:{} {}: {}", severity, pos.line, pos.column, field, message);
  }
  [[nodiscard]] std::string Line() const {
    return fmt::format("# expect {} {}:{} {}{}: {}", severity, pos.line, pos.column, field,
                       schema ? " [schema]" : "", message);
  }
};

const std::regex kExpectLine(
    R"(^# expect (error|warning) (\d+):(\d+) (\S+?)( \[schema\])?: (.*)$)");

std::vector<Expectation> ReadExpectations(const std::string& text) {
  std::vector<Expectation> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (!line.starts_with("# expect ")) continue;
    if (!std::regex_match(line, m, kExpectLine)) {
      ADD_FAILURE() << "malformed expectation: " << line;
      continue;
    }
    out.push_back({m[1], {std::stoi(m[2]), std::stoi(m[3])}, m[4], m[5].matched, m[6]});
  }
  return out;
}

Expectation FromDiagnostic(const Diagnostic& d) {
  return {d.severity == Severity::kError ? "error" : "warning", d.pos,
          d.field.empty() ? "-" : d.field, false, d.message};
}

void RewriteExpectations(const fs::path& path, const std::vector<Expectation>& old_ones,
                         std::vector<Expectation> actual) {
  std::string text = ReadFile(path);
  std::string kept;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("# expect ")) kept += line + "\n";
  }
  for (Expectation& e : actual) {
    e.schema = std::any_of(old_ones.begin(), old_ones.end(),
                           [&](const Expectation& o) { return o.schema && o.field == e.field; });
    kept += e.Line() + "\n";
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << kept;
}

struct CorpusCase {
  std::string name;
  std::string kind;                // "invalid", "valid" or "sets"
  std::vector<std::string> files;  // relative to the source dir
};

void PrintTo(const CorpusCase& c, std::ostream* out) { *out << c.name; }

std::vector<CorpusCase> AllCases() {
  std::vector<CorpusCase> cases;
  const fs::path fixtures = kSourceDir / "tests/fixtures";
  for (const char* kind : {"invalid", "valid"}) {
    for (const auto& entry : fs::directory_iterator(fixtures / kind)) {
      if (entry.path().extension() != ".yaml") continue;
      cases.push_back({fmt::format("{}_{}", kind, entry.path().stem().string()),
                       kind,
                       {fs::relative(entry.path(), kSourceDir).string()}});
    }
  }
  for (const auto& set : fs::directory_iterator(fixtures / "sets")) {
    CorpusCase c{fmt::format("sets_{}", set.path().filename().string()), "sets", {}};
    for (const auto& entry : fs::directory_iterator(set.path())) {
      c.files.push_back(fs::relative(entry.path(), kSourceDir).string());
    }
    std::sort(c.files.begin(), c.files.end());
    cases.push_back(std::move(c));
  }
  std::sort(cases.begin(), cases.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (CorpusCase& c : cases) std::replace(c.name.begin(), c.name.end(), '-', '_');
  return cases;
}

class ManifestCorpusTest : public testing::TestWithParam<CorpusCase> {};

TEST_P(ManifestCorpusTest, ReportsExactlyTheExpectedDiagnostics) {
  const CorpusCase& c = GetParam();
  std::vector<ParsedDocument> documents;
  for (const std::string& file : c.files) {
    auto parsed = ParseManifests(file, ReadFile(kSourceDir / file));
    std::move(parsed.begin(), parsed.end(), std::back_inserter(documents));
  }
  ValidateManifestSet(documents);

  const bool update = std::getenv("VMLAB_UPDATE_GOLDEN") != nullptr;
  for (const std::string& file : c.files) {
    const auto expected = ReadExpectations(ReadFile(kSourceDir / file));
    std::vector<Expectation> actual;
    bool all_valid = true;
    for (const ParsedDocument& doc : documents) {
      if (doc.file != file) continue;
      all_valid = all_valid && doc.valid();
      for (const Diagnostic& d : doc.diagnostics) actual.push_back(FromDiagnostic(d));
    }
    if (update) {
      RewriteExpectations(kSourceDir / file, expected, actual);
      continue;
    }
    std::vector<std::string> expected_keys;
    std::vector<std::string> actual_keys;
    for (const auto& e : expected) expected_keys.push_back(e.Key());
    for (const auto& a : actual) actual_keys.push_back(a.Key());
    EXPECT_EQ(actual_keys, expected_keys) << file;

    const bool expects_error = std::any_of(expected.begin(), expected.end(),
                                           [](const auto& e) { return e.severity == "error"; });
    if (c.kind == "valid") {
      EXPECT_TRUE(all_valid) << file << " is under valid/ but does not validate";
      EXPECT_FALSE(expects_error) << file;
    } else {
      EXPECT_TRUE(expects_error) << file << " must expect at least one error";
      EXPECT_FALSE(all_valid) << file;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ManifestCorpusTest, testing::ValuesIn(AllCases()),
                         [](const testing::TestParamInfo<CorpusCase>& param_info) {
                           return param_info.param.name;
                         });

TEST(ManifestCorpusTest, ExamplesAreValidAndWarningsAreOnlyTheExpectedOnes) {
  std::vector<ParsedDocument> documents;
  for (const char* file : {"examples/spk-lab.yaml", "examples/minimal.yaml"}) {
    auto parsed = ParseManifests(file, ReadFile(kSourceDir / file));
    ASSERT_EQ(parsed.size(), 1u) << file;
    documents.push_back(std::move(parsed[0]));
  }
  ValidateManifestSet(documents);
  for (const ParsedDocument& doc : documents) EXPECT_TRUE(doc.valid()) << doc.file;
  // The seed lab's two control planes are kept on purpose, and flagged.
  ASSERT_EQ(documents[0].diagnostics.size(), 1u);
  EXPECT_EQ(documents[0].diagnostics[0].field, "spec.controlPlane.replicas");
  EXPECT_EQ(documents[0].diagnostics[0].severity, Severity::kWarning);
  EXPECT_TRUE(documents[1].diagnostics.empty());
}

}  // namespace
}  // namespace vmlab::crds
