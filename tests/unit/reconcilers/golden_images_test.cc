// Golden base images: one build per key (the first lab claims it, others
// wait), the image made from the builder's disk by the real qemu-img as a
// standalone copy holding the builder's writes, failures remembered until
// they are retried, and the cache metrics.
#include "reconcilers/cache/golden_images.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "../controller/scratch_dir.h"
#include "fixtures.h"
#include "metrics/cache_metrics.h"
#include "metrics/registry.h"
#include "reconcilers/infrastructure/lab_layout.h"
#include "shell.h"

namespace vmlab::reconcilers::cache {
namespace {

using testing::HasSubstr;
using testing_support::ScratchDir;
using testing_support::Shell;

TEST(GoldenImagesTest, OneBuildPerKeyMadeFromTheBuildersDisk) {
  ScratchDir dir;
  const std::string d = dir.path().string();
  std::filesystem::create_directories(dir.path() / "state/pool");
  // A base image and the builder's disk over it, with what the builder wrote.
  Shell(
      fmt::format("qemu-img create -q -f qcow2 {d}/base.qcow2 64M && "
                  "qemu-io -f qcow2 -c 'write -P 0x11 0 1M' {d}/base.qcow2 >/dev/null && "
                  "qemu-img create -q -f qcow2 -F qcow2 -b {d}/base.qcow2 {d}/builder.qcow2 && "
                  "qemu-io -f qcow2 -c 'write -P 0x5a 1M 1M' {d}/builder.qcow2 >/dev/null",
                  fmt::arg("d", d)));
  metrics::Registry registry;
  metrics::CacheMetrics metrics(registry);
  GoldenImages golden({dir.path() / "state"}, &metrics);
  const std::string key(64, 'a');
  EXPECT_FALSE(golden.Ready(key));
  EXPECT_EQ(golden.Claim(key, "one"), "one");
  EXPECT_EQ(golden.Claim(key, "two"), "one") << "the second lab waits for the first";
  EXPECT_EQ(golden.Claim(key, "one"), "one");
  EXPECT_FALSE(golden.TimedOut(key, "one"));

  ASSERT_TRUE(golden.Finish(key, "one", dir.path() / "builder.qcow2"));
  const auto image = golden.Ready(key);
  ASSERT_TRUE(image);
  EXPECT_EQ(*image, infrastructure::GoldenImagePath(dir.path() / "state", key));
  EXPECT_EQ(image->filename(), "golden-aaaaaaaaaaaaaaaa.qcow2");
  const std::string info = Shell("qemu-img info " + image->string());
  EXPECT_THAT(info, HasSubstr("file format: qcow2"));
  EXPECT_THAT(info, testing::Not(HasSubstr("backing file"))) << "a standalone copy";
  Shell(
      fmt::format("qemu-io -f qcow2 -r -c 'read -P 0x11 0 1M' -c 'read -P 0x5a 1M 1M' {} "
                  "| grep -c 'read 1048576/1048576' | grep -qx 2",
                  image->string()));
  EXPECT_FALSE(std::filesystem::exists(image->string() + ".part"));
  EXPECT_EQ(golden.Claim(key, "two"), "two") << "claims end with the build";

  golden.CountHits(3);
  golden.Poll();
  const std::string text = registry.Serialize();
  EXPECT_EQ(
      testing_support::Metric(text, R"(vmlab_cache_requests_total{cache="golden",result="miss"})"),
      2)
      << "two builds claimed";
  EXPECT_EQ(
      testing_support::Metric(text, R"(vmlab_cache_requests_total{cache="golden",result="hit"})"),
      3);
  EXPECT_EQ(testing_support::Metric(text, R"(vmlab_golden_image_builds_total{result="succeeded"})"),
            1);
  EXPECT_GT(testing_support::Metric(text, R"(vmlab_cache_bytes{cache="golden"})"), 1e6);
  EXPECT_GE(testing_support::Metric(text, "vmlab_golden_image_age_seconds"), 0);
}

TEST(GoldenImagesTest, AFailedBuildIsRememberedUntilItsRetryAndReleasedClaimsFree) {
  ScratchDir dir;
  std::filesystem::create_directories(dir.path() / "pool");
  GoldenImagesOptions options{dir.path()};
  options.retry_after = std::chrono::seconds(3600);
  GoldenImages golden(options, nullptr);
  const std::string key(64, 'b');
  EXPECT_EQ(golden.Claim(key, "one"), "one");
  const auto made = golden.Finish(key, "one", dir.path() / "no-such-disk.qcow2");
  ASSERT_FALSE(made);
  EXPECT_THAT(made.error().message, HasSubstr("qemu-img convert"));
  EXPECT_THAT(golden.Failed(key).value_or(""), HasSubstr("no-such-disk.qcow2"));
  EXPECT_FALSE(golden.Ready(key));
  EXPECT_FALSE(
      std::filesystem::exists(infrastructure::GoldenImagePath(dir.path(), key).string() + ".part"));

  GoldenImagesOptions soon = options;
  soon.retry_after = std::chrono::seconds(0);
  GoldenImages retried(soon, nullptr);
  retried.Fail(key, "one", "the builder powered off early");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_FALSE(retried.Failed(key)) << "tried again after retry_after";

  EXPECT_EQ(golden.Claim(key, "two"), "two");
  golden.Release("two");
  EXPECT_EQ(golden.Claim(key, "three"), "three") << "a deleted lab's claim is gone";
  const std::string other(64, 'c');
  EXPECT_EQ(golden.Claim(other, "three"), "three");
  EXPECT_EQ(golden.Claim(key, "four"), "four") << "three's claim on its old key went";

  GoldenImagesOptions quick = options;
  quick.build_timeout = std::chrono::seconds(0);
  GoldenImages stuck(quick, nullptr);
  EXPECT_EQ(stuck.Claim(key, "one"), "one");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(stuck.TimedOut(key, "one"));
  EXPECT_EQ(stuck.Claim(key, "two"), "two") << "a build past its timeout is taken over";
}

}  // namespace
}  // namespace vmlab::reconcilers::cache
