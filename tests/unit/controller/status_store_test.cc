#include "controller/status_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "controller/fake_clock.h"
#include "controller/state_dir.h"
#include "scratch_dir.h"

namespace vmlab::controller {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;
using testing::HasSubstr;
using testing_support::ScratchDir;

Condition Make(std::string type, std::string status, std::string reason, std::string message) {
  Condition c;
  c.type = std::move(type);
  c.status = std::move(status);
  c.reason = std::move(reason);
  c.message = std::move(message);
  return c;
}

TEST(ConditionTest, TransitionTimeChangesOnlyWhenStatusFlips) {
  FakeClock clock;
  LabRecord record;
  const WallTime t0 = clock.WallNow();
  EXPECT_TRUE(SetCondition(record, Make("Ready", "False", "Creating", "a"), t0));
  EXPECT_EQ(record.FindCondition("Ready")->last_transition, t0);
  EXPECT_TRUE(SetCondition(record, Make("Ready", "False", "Waiting", "b"), t0 + seconds(5)));
  EXPECT_EQ(record.FindCondition("Ready")->last_transition, t0) << "same status: time kept";
  EXPECT_EQ(record.FindCondition("Ready")->reason, "Waiting");
  EXPECT_FALSE(SetCondition(record, Make("Ready", "False", "Waiting", "b"), t0 + seconds(6)));
  EXPECT_TRUE(SetCondition(record, Make("Ready", "True", "Ready", "ok"), t0 + seconds(9)));
  EXPECT_EQ(record.FindCondition("Ready")->last_transition, t0 + seconds(9));
  EXPECT_EQ(record.conditions.size(), 1u);
}

TEST(EventTest, RepeatsAreMergedAndTheRingIsBounded) {
  FakeClock clock;
  LabRecord record;
  const WallTime t0 = clock.WallNow();
  AddEvent(record, "Warning", "SpecInvalid", "bad", t0);
  AddEvent(record, "Normal", "SpecChanged", "gen 2", t0 + seconds(1));
  AddEvent(record, "Warning", "SpecInvalid", "bad", t0 + seconds(2));
  ASSERT_EQ(record.events.size(), 2u);
  EXPECT_EQ(record.events.back().reason, "SpecInvalid");
  EXPECT_EQ(record.events.back().count, 2);
  EXPECT_EQ(record.events.back().first, t0);
  EXPECT_EQ(record.events.back().last, t0 + seconds(2));
  for (int i = 0; i < 200; ++i) AddEvent(record, "Normal", "R", std::to_string(i), t0);
  EXPECT_EQ(record.events.size(), kMaxEvents);
  EXPECT_EQ(record.events.back().message, "199");
}

TEST(TimestampTest, RoundTripsRfc3339) {
  const WallTime t = std::chrono::sys_days{std::chrono::year{2026} / 11 / 26} +
                     std::chrono::hours(13) + std::chrono::minutes(4) + seconds(5);
  EXPECT_EQ(FormatTimestamp(t), "2026-11-26T13:04:05Z");
  EXPECT_EQ(ParseTimestamp("2026-11-26T13:04:05Z"), t);
  EXPECT_EQ(ParseTimestamp("yesterday"), std::nullopt);
}

TEST(StatusStoreTest, PersistsAndRestoresEverything) {
  ScratchDir dir;
  FakeClock clock;
  {
    StatusStore store(dir.path());
    ASSERT_TRUE(store.Load().has_value());
    ASSERT_TRUE(store
                    .Update("spk",
                            [&](LabRecord& r) {
                              r.generation = 3;
                              r.spec_hash = "abc";
                              r.created = clock.WallNow();
                              SetCondition(r, Make("SpecValid", "True", "Valid", "ok"),
                                           clock.WallNow());
                              r.nodes.push_back({"spk-cp-1", "control-plane", "172.42.42.11",
                                                 "missing", "", false});
                              AddEvent(r, "Normal", "Created", "generation 1", clock.WallNow());
                            })
                    .has_value());
  }
  StatusStore again(dir.path());
  ASSERT_TRUE(again.Load().has_value());
  const auto record = again.Get("spk");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->generation, 3);
  EXPECT_EQ(record->spec_hash, "abc");
  EXPECT_EQ(record->created, clock.WallNow());
  ASSERT_EQ(record->conditions.size(), 1u);
  EXPECT_EQ(record->conditions[0].last_transition, clock.WallNow());
  ASSERT_EQ(record->nodes.size(), 1u);
  EXPECT_EQ(record->nodes[0].ip, "172.42.42.11");
  ASSERT_EQ(record->events.size(), 1u);
  EXPECT_EQ(record->events[0].reason, "Created");
}

TEST(StatusStoreTest, WritesOnlyWhenSomethingChangedAndLeavesNoTempFiles) {
  ScratchDir dir;
  StatusStore store(dir.path());
  ASSERT_TRUE(store.Load().has_value());
  ASSERT_TRUE(store.Update("a", [](LabRecord& r) { r.generation = 1; }).has_value());
  const fs::path file = dir.path() / "labs/a.json";
  const auto first_write = fs::last_write_time(file);
  fs::last_write_time(file, first_write - std::chrono::hours(1));
  ASSERT_TRUE(store.Update("a", [](LabRecord& r) { r.generation = 1; }).has_value());
  EXPECT_EQ(fs::last_write_time(file), first_write - std::chrono::hours(1))
      << "rewritten unchanged";
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir.path() / "labs")) {
    files.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(files, std::vector<std::string>{"a.json"});
  EXPECT_EQ(fs::status(dir.path() / "labs").permissions() & fs::perms::all, fs::perms::owner_all);
}

TEST(StatusStoreTest, DamagedFileIsSetAsideAndReported) {
  ScratchDir dir;
  fs::create_directories(dir.path() / "labs");
  std::ofstream(dir.path() / "labs/bad.json") << "{\"name\": \"bad\", \"generat";
  std::ofstream(dir.path() / "labs/good.json") << "{\"name\": \"good\", \"generation\": 2}";
  StatusStore store(dir.path());
  const auto loaded = store.Load();
  ASSERT_FALSE(loaded.has_value());
  EXPECT_THAT(loaded.error().message, HasSubstr("bad.json"));
  EXPECT_TRUE(fs::exists(dir.path() / "labs/bad.json.corrupt"));
  EXPECT_FALSE(store.Get("bad").has_value());
  ASSERT_TRUE(store.Get("good").has_value());
  EXPECT_EQ(store.Get("good")->generation, 2);
}

TEST(StatusStoreTest, FailedWriteKeepsTheOldRecord) {
  ScratchDir dir;
  StatusStore store(dir.path());
  ASSERT_TRUE(store.Load().has_value());
  ASSERT_TRUE(store.Update("a", [](LabRecord& r) { r.generation = 1; }).has_value());
  fs::remove_all(dir.path() / "labs");
  std::ofstream(dir.path() / "labs") << "a file where the folder was";
  const auto result = store.Update("a", [](LabRecord& r) { r.generation = 2; });
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(store.Get("a")->generation, 1);
}

TEST(StatusStoreTest, RemoveDeletesTheFile) {
  ScratchDir dir;
  StatusStore store(dir.path());
  ASSERT_TRUE(store.Load().has_value());
  ASSERT_TRUE(store.Update("a", [](LabRecord& r) { r.generation = 1; }).has_value());
  ASSERT_TRUE(store.Remove("a").has_value());
  EXPECT_FALSE(fs::exists(dir.path() / "labs/a.json"));
  EXPECT_FALSE(store.Get("a").has_value());
}

// What a SIGKILL in the middle of a write leaves (tests/e2e/crash_test.py
// kills the controller at every libvirt change) is swept at the next start;
// libvirt's pool and everything else is left alone.
TEST(StateDirTest, LeftoversOfWritesCutShortAreRemovedAtStart) {
  ScratchDir dir;
  auto touch = [&](const fs::path& relative) {
    fs::create_directories((dir.path() / relative).parent_path());
    std::ofstream(dir.path() / relative) << "x";
  };
  touch("labs/spk.json");
  touch("labs/spk.json.tmp.4242");
  touch("pki/spk/ca.crt");
  touch("pki/spk/bootstrap.yaml.tmp.17");
  touch("pki/.spk.new.4242/ca.key");
  touch("pool/spk-cp-1-seed.iso.tmp.1");  // libvirt's folder: not ours
  touch("cache/images/registry.tmp");     // not a temp file of vmlab's pattern
  touch("labs/spk.json.corrupt");         // set aside on purpose: kept
  const auto removed = RemoveLeftoverTempFiles(dir.path());
  std::vector<std::string> names;
  for (const auto& p : removed) names.push_back(fs::relative(p, dir.path()).string());
  std::sort(names.begin(), names.end());
  EXPECT_THAT(names, testing::ElementsAre("labs/spk.json.tmp.4242", "pki/.spk.new.4242",
                                          "pki/spk/bootstrap.yaml.tmp.17"));
  for (const char* kept : {"labs/spk.json", "pki/spk/ca.crt", "pool/spk-cp-1-seed.iso.tmp.1",
                           "cache/images/registry.tmp", "labs/spk.json.corrupt"}) {
    EXPECT_TRUE(fs::exists(dir.path() / kept)) << kept;
  }
  EXPECT_FALSE(fs::exists(dir.path() / "pki/.spk.new.4242"));
  EXPECT_THAT(RemoveLeftoverTempFiles(dir.path()), testing::IsEmpty());
}

TEST(StateDirTest, QemusUserCanPassThroughTheStateDirButNotListIt) {
  // A distribution's libvirt runs qemu as its own user: it must reach the
  // pool and console folders inside the state dir (0711), never list it.
  ScratchDir scratch;
  const fs::path dir = scratch.path() / "state";
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all);  // as an older vmlab left it
  auto lock = StateDirLock::Acquire(dir);
  ASSERT_TRUE(lock.has_value());
  EXPECT_EQ(fs::status(dir).permissions() & fs::perms::all,
            fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  EXPECT_EQ(fs::status(dir / "lock").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
}

TEST(StatusStoreTest, AReconcilePastItsDeadlineIsAnEventOnlyOnALabThatHasARecord) {
  ScratchDir dir;
  FakeClock clock;
  StatusStore store(dir.path());
  ASSERT_TRUE(store.Load().has_value());
  ASSERT_TRUE(store.Update("spk", [](LabRecord& r) { r.generation = 1; }).has_value());
  ASSERT_TRUE(RecordReconcileTimeout(store, "spk", seconds(612), seconds(600), clock.WallNow())
                  .has_value());
  const auto record = store.Get("spk");
  ASSERT_TRUE(record.has_value());
  ASSERT_EQ(record->events.size(), 1u);
  EXPECT_EQ(record->events[0].type, "Warning");
  EXPECT_EQ(record->events[0].reason, "ReconcileTimedOut");
  EXPECT_THAT(record->events[0].message, HasSubstr("running for 612 s (deadline 600 s"));
  // A lab being deleted (its record gone) is not made again by the report.
  ASSERT_TRUE(RecordReconcileTimeout(store, "gone", seconds(700), seconds(600), clock.WallNow())
                  .has_value());
  EXPECT_FALSE(store.Get("gone").has_value());
}

}  // namespace
}  // namespace vmlab::controller
