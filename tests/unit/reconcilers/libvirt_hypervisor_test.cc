// LibvirtHypervisor against libvirt's own test driver (test:///default: no
// daemon, in-process state shared by every connection of this process).
#include "reconcilers/infrastructure/libvirt_hypervisor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "../controller/scratch_dir.h"
#include "crds/canonical.h"
#include "crds/labcluster_parse.h"
#include "reconcilers/infrastructure/lab_layout.h"

namespace vmlab::reconcilers::infrastructure {
namespace {

using testing::HasSubstr;

crds::LabCluster Lab(const std::string& name, const std::string& cidr) {
  auto docs = crds::ParseManifests("lab.yaml", testing_support::LabManifest(name, cidr, 1));
  return *docs.at(0).object;
}

template <typename T, typename Pred>
const T* Find(const std::vector<T>& items, Pred pred) {
  auto it = std::find_if(items.begin(), items.end(), pred);
  return it == items.end() ? nullptr : &*it;
}

class LibvirtHypervisorTest : public testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(connection_.Ensure().has_value()); }
  LibvirtConnection connection_{"test:///default", nullptr};
  LibvirtHypervisor hypervisor_{connection_};
};

TEST_F(LibvirtHypervisorTest, DefinesListsAndDeletesAnOwnedNetwork) {
  const auto lab = Lab("hvnet", "172.31.200.0/24");
  ASSERT_TRUE(hypervisor_.DefineNetwork(RenderNetworkXml(lab, "h1")).has_value());
  ASSERT_TRUE(hypervisor_.StartNetwork("vmlab-hvnet").has_value());
  auto networks = hypervisor_.ListNetworks();
  ASSERT_TRUE(networks.has_value());
  const NetworkInfo* mine = Find(*networks, [](const auto& n) { return n.name == "vmlab-hvnet"; });
  ASSERT_NE(mine, nullptr);
  EXPECT_TRUE(mine->active);
  ASSERT_TRUE(mine->owner.has_value());
  EXPECT_EQ(mine->owner->lab, "hvnet");
  const NetworkInfo* theirs = Find(*networks, [](const auto& n) { return n.name == "default"; });
  ASSERT_NE(theirs, nullptr);
  EXPECT_FALSE(theirs->owner.has_value()) << "libvirt's default network is not vmlab's";
  ASSERT_TRUE(hypervisor_.DeleteNetwork("vmlab-hvnet").has_value());
  const auto missing = hypervisor_.DeleteNetwork("vmlab-hvnet");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST_F(LibvirtHypervisorTest, DomainLifecycleWithOwnershipAndState) {
  const auto lab = Lab("hvdom", "172.31.201.0/24");
  const auto node = crds::PlanNodes(lab).at(0);
  DomainHostConfig host = HostConfigFor("/tmp/vmlab-test", lab, node, "qemu");
  ASSERT_TRUE(hypervisor_.DefineDomain(RenderDomainXml(lab, node, host, "h1")).has_value());
  ASSERT_TRUE(hypervisor_.StartDomain(node.name).has_value());
  auto domains = hypervisor_.ListDomains();
  ASSERT_TRUE(domains.has_value());
  const DomainInfo* d = Find(*domains, [&](const auto& x) { return x.name == node.name; });
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->state, "running");
  EXPECT_EQ(d->vcpus, 2);
  EXPECT_EQ(d->memory_mib, 2048);
  ASSERT_TRUE(d->owner.has_value());
  EXPECT_EQ(d->owner->node, node.name);
  EXPECT_EQ(d->owner->spec_hash, "h1");
  const DomainInfo* test = Find(*domains, [](const auto& x) { return x.name == "test"; });
  ASSERT_NE(test, nullptr);
  EXPECT_FALSE(test->owner.has_value()) << "the test driver's own domain is not vmlab's";

  ASSERT_TRUE(hypervisor_.StopDomain(node.name).has_value());
  domains = hypervisor_.ListDomains();
  EXPECT_EQ(Find(*domains, [&](const auto& x) { return x.name == node.name; })->state, "shutoff");
  ASSERT_TRUE(hypervisor_.DeleteDomain(node.name).has_value());
  domains = hypervisor_.ListDomains();
  EXPECT_EQ(Find(*domains, [&](const auto& x) { return x.name == node.name; }), nullptr);
}

TEST_F(LibvirtHypervisorTest, PoolAndVolumes) {
  testing_support::ScratchDir dir;
  ASSERT_TRUE(
      hypervisor_.EnsurePool("vmlab-test-pool", (dir.path() / "pool").string()).has_value());
  ASSERT_TRUE(hypervisor_.EnsurePool("vmlab-test-pool", (dir.path() / "pool").string()).has_value())
      << "idempotent";
  const auto elsewhere = hypervisor_.EnsurePool("vmlab-test-pool", (dir.path() / "other").string());
  ASSERT_FALSE(elsewhere) << "the pool of another state dir is not taken";
  EXPECT_THAT(elsewhere.error().message, testing::HasSubstr("another vmlab state dir"));
  ASSERT_TRUE(
      hypervisor_.CreateVolume("vmlab-test-pool", RenderVolumeXml("n1-root.qcow2", 20, "", ""))
          .has_value());
  auto volumes = hypervisor_.ListVolumes("vmlab-test-pool");
  ASSERT_TRUE(volumes.has_value());
  ASSERT_EQ(volumes->size(), 1u);
  EXPECT_EQ(volumes->at(0).name, "n1-root.qcow2");
  ASSERT_TRUE(hypervisor_.DeleteVolume("vmlab-test-pool", "n1-root.qcow2").has_value());
  EXPECT_TRUE(hypervisor_.ListVolumes("vmlab-test-pool")->empty());
}

TEST_F(LibvirtHypervisorTest, LifecycleEventsNameTheOwningLab) {
  std::atomic<int> seen{0};
  std::mutex mutex;
  std::vector<std::string> labs;
  LibvirtConnection watcher("test:///default", nullptr);
  LibvirtHypervisor watching(watcher);
  watching.WatchEvents([&](const std::string& lab) {
    std::lock_guard guard(mutex);
    labs.push_back(lab);
    ++seen;
  });
  ASSERT_TRUE(watcher.Ensure().has_value());
  const auto lab = Lab("hvevt", "172.31.202.0/24");
  const auto node = crds::PlanNodes(lab).at(0);
  ASSERT_TRUE(
      hypervisor_
          .DefineDomain(RenderDomainXml(lab, node, HostConfigFor("/tmp/x", lab, node, "qemu"), "h"))
          .has_value());
  ASSERT_TRUE(hypervisor_.StartDomain(node.name).has_value());
  ASSERT_TRUE(hypervisor_.DeleteDomain(node.name).has_value());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (seen < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::lock_guard guard(mutex);
  ASSERT_GE(labs.size(), 3u);
  EXPECT_TRUE(std::all_of(labs.begin(), labs.end(), [](const auto& l) { return l == "hvevt"; }));
}

TEST(LibvirtConnectionTest, UnreachableUriIsUnavailable) {
  LibvirtConnection connection("qemu:///system?socket=/nonexistent/vmlab/sock", nullptr);
  const auto ensured = connection.Ensure();
  ASSERT_FALSE(ensured.has_value());
  EXPECT_EQ(ensured.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(ensured.error().message, HasSubstr("cannot connect to libvirt"));
  LibvirtHypervisor hypervisor(connection);
  const auto listed = hypervisor.ListDomains();
  ASSERT_FALSE(listed.has_value());
  EXPECT_EQ(listed.error().code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace vmlab::reconcilers::infrastructure
