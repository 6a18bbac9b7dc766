// Image archives identified by content: archives made with skopeo (the
// fixture tests/fixtures/images/make_archives.sh) in docker-save and OCI
// formats, renamed, compressed, unnamed, and a file that is no archive.
#include "reconcilers/cache/image_archives.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../controller/scratch_dir.h"
#include "fixtures.h"
#include "shell.h"

namespace vmlab::reconcilers::cache {
namespace {

using testing::ElementsAre;
using testing::HasSubstr;
using testing_support::ScratchDir;

class ImageArchivesTest : public testing::Test {
 protected:
  void SetUp() override {
    (void)testing_support::Shell(
        "bash " +
        (testing_support::kSourceDir / "tests/fixtures/images/make_archives.sh").string() + " " +
        dir_.path().string());
  }
  std::filesystem::path Path(const char* name) const { return dir_.path() / name; }
  ScratchDir dir_;
};

TEST_F(ImageArchivesTest, ReadsTheImagesInsideEitherFormat) {
  const auto docker = InspectArchive(Path("app-docker.tar"));
  ASSERT_TRUE(docker) << docker.error().message;
  EXPECT_EQ(docker->format, "docker-archive");
  EXPECT_THAT(docker->images, ElementsAre("example.com/team/app:1.0"));
  EXPECT_EQ(docker->id.size(), 64u);
  EXPECT_GT(docker->size, 0u);

  const auto oci = InspectArchive(Path("app-oci.tar"));
  ASSERT_TRUE(oci) << oci.error().message;
  EXPECT_EQ(oci->format, "oci-archive");
  EXPECT_THAT(oci->images, ElementsAre("example.com/team/app:1.0"));

  const auto tools = InspectArchive(Path("tools.tar"));
  ASSERT_TRUE(tools);
  EXPECT_THAT(tools->images, ElementsAre("docker.io/library/tools:2"))
      << "named as containerd names it";
  EXPECT_NE(tools->id, docker->id);
}

TEST_F(ImageArchivesTest, IdentityIsTheContentNotTheFileName) {
  const auto docker = InspectArchive(Path("app-docker.tar"));
  const auto renamed = InspectArchive(Path("renamed.tar"));
  ASSERT_TRUE(docker && renamed);
  EXPECT_EQ(renamed->id, docker->id);
  const auto compressed = InspectArchive(Path("app-docker.tar.gz"));
  ASSERT_FALSE(compressed) << "nodes could not import it";
  EXPECT_THAT(compressed.error().message, HasSubstr("is compressed (gzip)"));
}

TEST_F(ImageArchivesTest, SaysWhatIsNotAUsableArchive) {
  const auto unnamed = InspectArchive(Path("unnamed.tar"));
  ASSERT_FALSE(unnamed);
  EXPECT_THAT(unnamed.error().message, HasSubstr("names no image"));
  const auto text = InspectArchive(Path("notes.txt"));
  ASSERT_FALSE(text);
  EXPECT_THAT(text.error().message, HasSubstr("notes.txt"));
  EXPECT_FALSE(InspectArchive(Path("missing.tar")));
}

TEST_F(ImageArchivesTest, AFolderIsCataloguedOncePerContent) {
  const auto catalog = ScanArchives(dir_.path());
  ASSERT_TRUE(catalog) << catalog.error().message;
  std::set<std::string> images;
  for (const auto& archive : catalog->archives)
    images.insert(archive.images.begin(), archive.images.end());
  EXPECT_THAT(images, ElementsAre("docker.io/library/tools:2", "example.com/team/app:1.0"));
  EXPECT_EQ(catalog->archives.size(), 2u) << "one archive per image set";
  EXPECT_EQ(catalog->problems.size(), 5u);
  const std::string problems = testing::PrintToString(catalog->problems);
  EXPECT_THAT(problems, HasSubstr("holds the same images as"));
  EXPECT_THAT(problems, HasSubstr("provides only images other archives provide"));
  EXPECT_THAT(problems, HasSubstr("names no image"));
  EXPECT_THAT(problems, HasSubstr("is compressed"));
  EXPECT_FALSE(ScanArchives(dir_.path() / "absent"));
}

}  // namespace
}  // namespace vmlab::reconcilers::cache
