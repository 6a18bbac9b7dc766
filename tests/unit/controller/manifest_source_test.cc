// ManifestSource against a real folder and real inotify, with simulated time:
// Step(0) reads the events the file operations already queued, and the fake
// clock decides when debounce, grace period and retries are due. No sleeps.
#include "controller/manifest_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "controller/fake_clock.h"
#include "metrics/lab_metrics.h"
#include "metrics/registry.h"
#include "scratch_dir.h"

namespace vmlab::controller {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::ElementsAre;
using testing::HasSubstr;
using testing_support::LabManifest;
using testing_support::ScratchDir;

class ManifestSourceTest : public testing::Test {
 protected:
  ManifestSourceTest() { Make(dir_.path()); }

  void Make(const fs::path& folder) {
    ManifestSourceOptions options;
    options.folder = folder;
    options.debounce = milliseconds(200);
    options.deletion_grace = seconds(30);
    options.folder_retry = seconds(2);
    source_ = std::make_unique<ManifestSource>(
        clock_, options, [this](const std::string& name) { changes_.push_back(name); },
        &lab_metrics_);
  }

  // Reads queued events, then lets the debounce pass.
  void Settle() {
    source_->Step(Duration::zero());
    clock_.Advance(milliseconds(200));
    source_->Step(Duration::zero());
  }

  std::string Hash(const std::string& name) {
    auto lab = source_->Get(name);
    return lab ? lab->spec_hash : "";
  }

  FakeClock clock_;
  ScratchDir dir_;
  metrics::Registry registry_;
  metrics::LabMetrics lab_metrics_{registry_};
  std::vector<std::string> changes_;
  std::unique_ptr<ManifestSource> source_;
};

TEST_F(ManifestSourceTest, InitialScanReadsExistingManifestsAndSkipsOthers) {
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24"));
  dir_.Write("b.yml", LabManifest("b", "172.42.2.0/24"));
  dir_.Write(".c.yaml", LabManifest("c", "172.42.3.0/24"));
  dir_.Write("d.yaml~", LabManifest("d", "172.42.4.0/24"));
  EXPECT_FALSE(source_->InitialScanDone());
  source_->Start();
  EXPECT_TRUE(source_->InitialScanDone());
  EXPECT_THAT(source_->Names(), ElementsAre("a", "b"));
  const auto a = source_->Get("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_TRUE(a->spec_valid);
  EXPECT_EQ(a->spec->spec.network.cidr.ToString(), "172.42.1.0/24");
  EXPECT_EQ(a->source, (dir_.path() / "a.yaml").string());
  EXPECT_NE(registry_.Serialize().find("vmlab_manifests{state=\"valid\"} 2"), std::string::npos);
}

TEST_F(ManifestSourceTest, NewFileIsReadAfterTheDebounce) {
  source_->Start();
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24"));
  source_->Step(Duration::zero());
  clock_.Advance(milliseconds(199));
  source_->Step(Duration::zero());
  EXPECT_FALSE(source_->Get("a").has_value()) << "read before the quiet period ended";
  clock_.Advance(milliseconds(1));
  source_->Step(Duration::zero());
  EXPECT_TRUE(source_->Get("a").has_value());
  EXPECT_THAT(changes_, ElementsAre("a"));
}

TEST_F(ManifestSourceTest, BurstOfWritesIsReadOnce) {
  source_->Start();
  for (int replicas = 1; replicas <= 5; ++replicas) {
    dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24", replicas));
    source_->Step(Duration::zero());
    clock_.Advance(milliseconds(100));
  }
  clock_.Advance(milliseconds(100));
  source_->Step(Duration::zero());
  EXPECT_THAT(changes_, ElementsAre("a"));
  EXPECT_EQ(source_->Get("a")->spec->spec.workers.replicas, 5);
}

TEST_F(ManifestSourceTest, EditChangesTheSpecAndNotifies) {
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24", 1));
  source_->Start();
  const std::string before = Hash("a");
  changes_.clear();
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24", 4));
  Settle();
  EXPECT_NE(Hash("a"), before);
  EXPECT_EQ(source_->Get("a")->spec->spec.workers.replicas, 4);
  EXPECT_THAT(changes_, ElementsAre("a"));
}

TEST_F(ManifestSourceTest, SavingTheSameContentAgainChangesNothing) {
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24"));
  source_->Start();
  changes_.clear();
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24"));
  Settle();
  EXPECT_TRUE(changes_.empty());
}

TEST_F(ManifestSourceTest, AtomicRenameOverTheFileIsRead) {
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24", 1));
  source_->Start();
  dir_.Write(".a.yaml.tmp", LabManifest("a", "172.42.1.0/24", 7));
  fs::rename(dir_.path() / ".a.yaml.tmp", dir_.path() / "a.yaml");
  Settle();
  EXPECT_EQ(source_->Get("a")->spec->spec.workers.replicas, 7);
}

TEST_F(ManifestSourceTest, VimStyleSaveNeverStartsADeletion) {
  // vim without backupcopy: rename to a backup, write anew, remove the backup.
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24", 1));
  source_->Start();
  changes_.clear();
  fs::rename(dir_.path() / "a.yaml", dir_.path() / "a.yaml~");
  source_->Step(Duration::zero());
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24", 2));
  fs::remove(dir_.path() / "a.yaml~");
  Settle();
  const auto a = source_->Get("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_FALSE(a->deletion_at.has_value());
  EXPECT_EQ(a->spec->spec.workers.replicas, 2);
  EXPECT_THAT(changes_, ElementsAre("a"));
}

TEST_F(ManifestSourceTest, InvalidEditKeepsTheLastGoodSpec) {
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24", 1));
  source_->Start();
  const std::string good = Hash("a");
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24", 999));
  Settle();
  const auto a = source_->Get("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_FALSE(a->spec_valid);
  EXPECT_EQ(a->invalid_reason, "InvalidSpec");
  EXPECT_THAT(a->invalid_message, HasSubstr("a.yaml:11:15: error: spec.workers.replicas: must be "
                                            "between 0 and 150; got 999"));
  EXPECT_EQ(a->spec_hash, good);
  EXPECT_EQ(a->spec->spec.workers.replicas, 1);

  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24", 2));
  Settle();
  EXPECT_TRUE(source_->Get("a")->spec_valid);
  EXPECT_EQ(source_->Get("a")->spec->spec.workers.replicas, 2);
}

TEST_F(ManifestSourceTest, UnparsableFileKeepsEveryLabItDefined) {
  dir_.Write("labs.yaml",
             LabManifest("a", "172.42.1.0/24") + "---\n" + LabManifest("b", "172.42.2.0/24"));
  source_->Start();
  dir_.Write("labs.yaml", "this: is: not [valid yaml\n");
  Settle();
  for (const char* name : {"a", "b"}) {
    const auto lab = source_->Get(name);
    ASSERT_TRUE(lab.has_value()) << name;
    EXPECT_FALSE(lab->spec_valid);
    EXPECT_FALSE(lab->deletion_at.has_value()) << "an invalid edit must not start a deletion";
    EXPECT_THAT(lab->invalid_message, HasSubstr("invalid YAML"));
  }
  clock_.Advance(seconds(3600));
  source_->Step(Duration::zero());
  EXPECT_TRUE(source_->Get("a").has_value());
}

TEST_F(ManifestSourceTest, DeletedManifestIsDeletedAfterTheGracePeriod) {
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24"));
  source_->Start();
  changes_.clear();
  fs::remove(dir_.path() / "a.yaml");
  Settle();
  auto a = source_->Get("a");
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(a->deletion_at.has_value());
  EXPECT_EQ(*a->deletion_at, clock_.WallNow() + seconds(30));
  EXPECT_NE(registry_.Serialize().find("vmlab_manifests{state=\"deleting\"} 1"), std::string::npos);
  clock_.Advance(seconds(29));
  source_->Step(Duration::zero());
  EXPECT_TRUE(source_->Get("a").has_value());
  clock_.Advance(seconds(1));
  source_->Step(Duration::zero());
  EXPECT_FALSE(source_->Get("a").has_value());
  EXPECT_THAT(changes_, ElementsAre("a", "a"));
}

TEST_F(ManifestSourceTest, ManifestBackWithinTheGracePeriodCancelsTheDeletion) {
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24"));
  source_->Start();
  fs::remove(dir_.path() / "a.yaml");
  Settle();
  clock_.Advance(seconds(10));
  dir_.Write("renamed.yaml", LabManifest("a", "172.42.1.0/24"));
  Settle();
  auto a = source_->Get("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_FALSE(a->deletion_at.has_value());
  EXPECT_EQ(a->source, (dir_.path() / "renamed.yaml").string());
  clock_.Advance(seconds(60));
  source_->Step(Duration::zero());
  EXPECT_TRUE(source_->Get("a").has_value());
}

TEST_F(ManifestSourceTest, SwapAndBackupFilesAreIgnored) {
  source_->Start();
  dir_.Write(".a.yaml.swp", "binary swap");
  dir_.Write("a.yaml~", LabManifest("a", "172.42.1.0/24"));
  dir_.Write("#a.yaml#", "autosave");
  dir_.Write("notes.txt", "hello");
  Settle();
  EXPECT_TRUE(source_->Names().empty());
  EXPECT_TRUE(changes_.empty());
}

TEST_F(ManifestSourceTest, SameNameInTwoFilesAppliesNeitherChange) {
  dir_.Write("a.yaml", LabManifest("x", "172.42.1.0/24", 1));
  source_->Start();
  const std::string good = Hash("x");
  dir_.Write("b.yaml", LabManifest("x", "172.42.9.0/24", 5));
  Settle();
  auto x = source_->Get("x");
  ASSERT_TRUE(x.has_value());
  EXPECT_FALSE(x->spec_valid);
  EXPECT_EQ(x->invalid_reason, "DuplicateName");
  EXPECT_THAT(x->invalid_message, HasSubstr("is also defined at"));
  EXPECT_EQ(x->spec_hash, good);
  fs::remove(dir_.path() / "b.yaml");
  Settle();
  EXPECT_TRUE(source_->Get("x")->spec_valid);
  EXPECT_EQ(source_->Get("x")->spec_hash, good);
}

TEST_F(ManifestSourceTest, QueueOverflowTriggersAFullRescan) {
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24"));
  source_->Start();
  // More events than inotify queues (two per file written): the queue overflows,
  // and the events for a.yaml and b.yaml below are lost.
  int max_queued = 16384;
  std::ifstream("/proc/sys/fs/inotify/max_queued_events") >> max_queued;
  for (int i = 0; i < max_queued / 2 + 100; ++i) {
    dir_.Write("noise-" + std::to_string(i) + ".txt", "x");
  }
  fs::remove(dir_.path() / "a.yaml");
  dir_.Write("b.yaml", LabManifest("b", "172.42.2.0/24"));
  Settle();
  EXPECT_TRUE(source_->Get("b").has_value()) << "the rescan must find the new file";
  ASSERT_TRUE(source_->Get("a").has_value());
  EXPECT_TRUE(source_->Get("a")->deletion_at.has_value()) << "and the removed one";
}

TEST_F(ManifestSourceTest, MissingFolderIsReportedAndRetried) {
  const fs::path folder = dir_.path() / "later";
  Make(folder);
  source_->Start();
  EXPECT_THAT(source_->FolderError(), HasSubstr("does not exist"));
  EXPECT_FALSE(source_->InitialScanDone());
  fs::create_directory(folder);
  std::ofstream(folder / "a.yaml") << LabManifest("a", "172.42.1.0/24");
  clock_.Advance(seconds(2));
  source_->Step(Duration::zero());
  EXPECT_EQ(source_->FolderError(), "");
  EXPECT_TRUE(source_->InitialScanDone());
  EXPECT_TRUE(source_->Get("a").has_value());
}

TEST_F(ManifestSourceTest, RemovedFolderKeepsLabsAndIsWatchedAgainWhenBack) {
  const fs::path folder = dir_.path() / "watched";
  fs::create_directory(folder);
  std::ofstream(folder / "a.yaml") << LabManifest("a", "172.42.1.0/24");
  Make(folder);
  source_->Start();
  fs::remove_all(folder);
  Settle();
  EXPECT_THAT(source_->FolderError(), HasSubstr("was removed or moved"));
  clock_.Advance(seconds(3600));
  source_->Step(Duration::zero());
  ASSERT_TRUE(source_->Get("a").has_value()) << "a missing folder must not delete labs";
  EXPECT_FALSE(source_->Get("a")->deletion_at.has_value());

  fs::create_directory(folder);
  std::ofstream(folder / "a.yaml") << LabManifest("a", "172.42.1.0/24", 3);
  clock_.Advance(seconds(2));
  source_->Step(Duration::zero());
  EXPECT_EQ(source_->FolderError(), "");
  EXPECT_EQ(source_->Get("a")->spec->spec.workers.replicas, 3);
}

TEST_F(ManifestSourceTest, LabKnownFromTheStateDirWithoutManifestGetsTheGracePeriod) {
  dir_.Write("a.yaml", LabManifest("a", "172.42.1.0/24"));
  source_->Start({"a", "gone"});
  const auto gone = source_->Get("gone");
  ASSERT_TRUE(gone.has_value()) << "must not vanish at once: the folder may be the wrong one";
  EXPECT_TRUE(gone->deletion_at.has_value());
  EXPECT_FALSE(source_->Get("a")->deletion_at.has_value());
  clock_.Advance(seconds(30));
  source_->Step(Duration::zero());
  EXPECT_FALSE(source_->Get("gone").has_value());
  EXPECT_TRUE(source_->Get("a").has_value());
}

}  // namespace
}  // namespace vmlab::controller
