#include "controller/manifest_files.h"

#include <gtest/gtest.h>

namespace vmlab::controller {
namespace {

TEST(ManifestFilesTest, ClassifiesEditorAndHiddenFiles) {
  struct Case {
    const char* name;
    FileKind kind;
  };
  for (const Case& c :
       {Case{"spk-lab.yaml", FileKind::kManifest}, Case{"a.yml", FileKind::kManifest},
        Case{".spk-lab.yaml.swp", FileKind::kHidden}, Case{".#spk-lab.yaml", FileKind::kHidden},
        Case{".hidden.yaml", FileKind::kHidden}, Case{"spk-lab.yaml~", FileKind::kEditorTemp},
        Case{"#spk-lab.yaml#", FileKind::kEditorTemp},
        Case{"spk-lab.yaml.bak", FileKind::kEditorTemp},
        Case{"spk-lab.yaml.swp", FileKind::kEditorTemp}, Case{"4913", FileKind::kEditorTemp},
        Case{"README.md", FileKind::kNotYaml}, Case{"lab.json", FileKind::kNotYaml}}) {
    EXPECT_EQ(ClassifyFileName(c.name), c.kind) << c.name;
  }
}

}  // namespace
}  // namespace vmlab::controller
