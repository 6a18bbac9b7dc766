#include "controller/config_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "scratch_dir.h"

namespace vmlab::controller {
namespace {

using ::testing::HasSubstr;

class ConfigFileTest : public ::testing::Test {
 protected:
  Result<std::vector<ConfigEntry>> Read(const std::string& text) {
    dir_.Write("controller.yaml", text);
    return ReadConfigFile(dir_.path() / "controller.yaml");
  }
  std::string Path() const { return (dir_.path() / "controller.yaml").string(); }
  testing_support::ScratchDir dir_;
};

TEST_F(ConfigFileTest, ScalarsAndListsKeepTheirPositions) {
  const auto entries = Read(
      "# vmlab controller\n"
      "watch: /var/lib/vmlab/labs\n"
      "workers: 4\n"
      "registry-mirror:\n"
      "  - docker.io=http://mirror:5000\n"
      "  - quay.io=http://mirror:5001\n"
      "simulate-guests: false\n");
  ASSERT_TRUE(entries) << entries.error().message;
  ASSERT_EQ(entries->size(), 4u);
  EXPECT_EQ((*entries)[0].key, "watch");
  EXPECT_EQ((*entries)[0].values, std::vector<std::string>{"/var/lib/vmlab/labs"});
  EXPECT_EQ((*entries)[0].line, 2);
  EXPECT_EQ((*entries)[0].column, 1);
  EXPECT_EQ((*entries)[2].key, "registry-mirror");
  EXPECT_TRUE((*entries)[2].sequence);
  EXPECT_EQ((*entries)[2].values.size(), 2u);
  EXPECT_EQ((*entries)[3].values, std::vector<std::string>{"false"});
}

TEST_F(ConfigFileTest, AnEmptyFileConfiguresNothing) {
  const auto entries = Read("# nothing yet\n");
  ASSERT_TRUE(entries);
  EXPECT_TRUE(entries->empty());
}

TEST_F(ConfigFileTest, ErrorsNameFileLineColumnAndOption) {
  EXPECT_EQ(Read("watch: /a\nworkers: [1, [2]]\n").error().message,
            Path() + ":2:14: error: workers: a list of plain values is expected here");
  EXPECT_EQ(Read("watch: /a\nwatch: /b\n").error().message,
            Path() + ":2:1: error: watch: given twice; keep one (a list for several values)");
  EXPECT_EQ(Read("listen:\n").error().message,
            Path() + ":1:1: error: listen: has no value; give one or remove the line");
  EXPECT_EQ(Read("--watch: /a\n").error().message,
            Path() + ":1:1: error: --watch: write the option name without dashes: `watch:`");
  EXPECT_THAT(Read("- watch\n").error().message,
              HasSubstr(":1:1: error: expected a mapping of option names to values"));
  EXPECT_EQ(Read("watch: /a\nmirror: b: c\n").error().message,
            Path() + ":2:10: error: illegal map value (the config file is YAML)");
  EXPECT_THAT(ReadConfigFile(dir_.path() / "absent.yaml").error().message,
              HasSubstr("absent.yaml: cannot read the config file"));
  EXPECT_THAT(ReadConfigFile(dir_.path()).error().message,
              HasSubstr(": cannot read the config file"))
      << "a folder is not a config file";
  EXPECT_EQ(Read("watch: /a\n---\nworkers: 2\n").error().message,
            Path() + ":2:1: error: one YAML document expected; merge the documents into one");
  EXPECT_FALSE(Read(",").has_value()) << "a stream yaml-cpp 0.7's LoadAll never finishes";
}

}  // namespace
}  // namespace vmlab::controller
