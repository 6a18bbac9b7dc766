#include "controller/validate_command.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "controller/cli.h"
#include "scratch_dir.h"

namespace vmlab::controller {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

const fs::path kSourceDir = VMLAB_SOURCE_DIR;

struct CliRun {
  int code = -1;
  std::string out;
  std::string err;
};

CliRun RunVmlab(std::vector<std::string> args) {
  args.insert(args.begin(), "vmlab");
  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  std::ostringstream out;
  std::ostringstream err;
  const int code = RunCli(static_cast<int>(argv.size()), argv.data(), out, err);
  return {code, out.str(), err.str()};
}

using testing_support::ScratchDir;

std::string Lab(const std::string& name, const std::string& cidr) {
  return "apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata:\n  name: " + name +
         "\nspec:\n  kubernetes:\n    version: \"1.30.4\"\n  network:\n    cidr: " + cidr + "\n";
}

TEST(ValidateCommandTest, ExamplesAreValid) {
  const CliRun run = RunVmlab({"validate", (kSourceDir / "examples").string()});
  EXPECT_EQ(run.code, kExitValid) << run.err;
  EXPECT_THAT(run.out, HasSubstr("2 valid, 0 invalid"));
  EXPECT_THAT(run.out, HasSubstr("LabCluster \"spk\" is valid"));
}

TEST(ValidateCommandTest, InvalidManifestExitsOneWithPathLineColumnField) {
  ScratchDir dir;
  dir.Write("lab.yaml", Lab("lab", "172.42.42.0/24") + "  workers:\n    replcas: 3\n");
  const std::string path = (dir.path() / "lab.yaml").string();
  const CliRun run = RunVmlab({"validate", path});
  EXPECT_EQ(run.code, kExitInvalid);
  EXPECT_EQ(run.err, path +
                         ":11:5: error: spec.workers.replcas: unknown field; did you mean "
                         "\"replicas\"?\n");
  EXPECT_THAT(run.out, HasSubstr("0 valid, 1 invalid"));
}

TEST(ValidateCommandTest, MissingPathIsAnIoErrorAndOthersAreStillChecked) {
  const CliRun run = RunVmlab(
      {"validate", "/nonexistent/vmlab/lab.yaml", (kSourceDir / "examples/minimal.yaml").string()});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("/nonexistent/vmlab/lab.yaml: error: no such file or directory"));
  EXPECT_THAT(run.out, HasSubstr("1 valid, 0 invalid"));
}

TEST(ValidateCommandTest, FolderSkipsAndListsEditorFilesDotfilesAndOthers) {
  ScratchDir dir;
  dir.Write("lab.yaml", Lab("lab", "172.42.42.0/24"));
  dir.Write(".lab.yaml.swp", "\x01\x02 binary swap");
  dir.Write("lab.yaml~", "not: valid: yaml: [");
  dir.Write("#lab.yaml#", "garbage");
  dir.Write(".hidden.yaml", "garbage: [");
  dir.Write("README.md", "# notes");
  fs::create_directory(dir.path() / "nested.yaml");
  const CliRun run = RunVmlab({"validate", dir.path().string()});
  EXPECT_EQ(run.code, kExitValid) << run.err;
  EXPECT_EQ(run.err, "");
  const std::string d = dir.path().string();
  EXPECT_THAT(run.out, HasSubstr("skipped " + d + "/.lab.yaml.swp: hidden file"));
  EXPECT_THAT(run.out,
              HasSubstr("skipped " + d + "/lab.yaml~: editor swap, backup or temporary file"));
  EXPECT_THAT(run.out,
              HasSubstr("skipped " + d + "/#lab.yaml#: editor swap, backup or temporary file"));
  EXPECT_THAT(run.out, HasSubstr("skipped " + d + "/.hidden.yaml: hidden file"));
  EXPECT_THAT(run.out, HasSubstr("skipped " + d + "/README.md: not a .yaml or .yml file"));
  EXPECT_THAT(run.out, HasSubstr("skipped " + d + "/nested.yaml: a folder"));
  EXPECT_THAT(run.out, HasSubstr("1 valid, 0 invalid"));
}

TEST(ValidateCommandTest, ExplicitFileIsReadWhateverItsName) {
  ScratchDir dir;
  dir.Write("lab.txt", Lab("lab", "172.42.42.0/24"));
  const CliRun run = RunVmlab({"validate", (dir.path() / "lab.txt").string()});
  EXPECT_EQ(run.code, kExitValid) << run.err;
}

TEST(ValidateCommandTest, DuplicateNamesAndOverlapsAcrossFilesAreReportedOnBoth) {
  ScratchDir dir;
  dir.Write("a.yaml", Lab("twin", "172.42.42.0/24"));
  dir.Write("b.yaml", Lab("twin", "172.43.43.0/24"));
  dir.Write("c.yaml", Lab("wide", "172.43.0.0/16"));
  const CliRun run = RunVmlab({"validate", "-q", dir.path().string()});
  EXPECT_EQ(run.code, kExitInvalid);
  EXPECT_EQ(run.out, "");
  const std::string d = dir.path().string();
  EXPECT_THAT(run.err, HasSubstr(d +
                                 "/a.yaml:4:9: error: metadata.name: LabCluster \"twin\" is also "
                                 "defined at " +
                                 d + "/b.yaml:4:9"));
  EXPECT_THAT(run.err, HasSubstr(d +
                                 "/b.yaml:4:9: error: metadata.name: LabCluster \"twin\" is also "
                                 "defined at " +
                                 d + "/a.yaml:4:9"));
  EXPECT_THAT(run.err,
              HasSubstr(d + "/b.yaml:9:11: error: spec.network.cidr: 172.43.43.0/24 overlaps "
                            "the network 172.43.0.0/16 of LabCluster \"wide\""));
  EXPECT_THAT(run.err,
              HasSubstr(d + "/c.yaml:9:11: error: spec.network.cidr: 172.43.0.0/16 overlaps "
                            "the network 172.43.43.0/24 of LabCluster \"twin\""));
}

TEST(ValidateCommandTest, EveryErrorLineHasTheDocumentedFormat) {
  const CliRun run = RunVmlab({"validate", "-q", (kSourceDir / "tests/fixtures/invalid").string()});
  EXPECT_EQ(run.code, kExitInvalid);
  const std::regex line_format(R"(^[^:]+:\d+:\d+: (error|warning): (\S+: )?.+$)");
  std::istringstream lines(run.err);
  int count = 0;
  for (std::string line; std::getline(lines, line); ++count) {
    EXPECT_TRUE(std::regex_match(line, line_format)) << line;
  }
  EXPECT_GT(count, 60);
}

TEST(ValidateCommandTest, OversizedFileIsRefusedUnparsed) {
  ScratchDir dir;
  dir.Write("big.yaml", Lab("lab", "172.42.42.0/24") + "# " + std::string(2 << 20, 'x') + "\n");
  const fs::path big = dir.path() / "big.yaml";
  const CliRun run = RunVmlab({"validate", big.string()});
  EXPECT_EQ(run.code, kExitInvalid);
  EXPECT_THAT(run.err,
              HasSubstr("big.yaml:1:1: error: the file is " + std::to_string(fs::file_size(big)) +
                        " bytes; manifests over 1048576 bytes are refused"));
}

TEST(CliTest, HelpOnEveryCommandExitsZero) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--help"}, {"validate", "--help"}, {"version", "--help"}}) {
    const CliRun run = RunVmlab(args);
    EXPECT_EQ(run.code, 0) << args[0];
    EXPECT_THAT(run.out, HasSubstr("Usage: vmlab")) << args[0];
  }
  EXPECT_THAT(RunVmlab({"validate", "--help"}).out,
              HasSubstr("PATH:LINE:COL: error: FIELD.PATH: message"));
}

TEST(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(RunVmlab({}).code, kExitUsage);
  EXPECT_EQ(RunVmlab({"validate"}).code, kExitUsage);
  EXPECT_EQ(RunVmlab({"frobnicate"}).code, kExitUsage);
  const CliRun run = RunVmlab({"validate", "--bogus", "x"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("Run `vmlab --help` for usage."));
}

TEST(CliTest, VersionNamesTheApi) {
  const CliRun run = RunVmlab({"version"});
  EXPECT_EQ(run.code, 0);
  EXPECT_TRUE(std::regex_match(
      run.out, std::regex(R"(vmlab \d+\.\d+\.\d+ \(commit \S+, API vmlab\.io/v1alpha1\)\n)")))
      << run.out;
}

}  // namespace
}  // namespace vmlab::controller
