#include "crds/canonical.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "crds/labcluster_parse.h"
#include "test_files.h"

namespace vmlab::crds {
namespace {

using testing_support::ReadSourceFile;

LabCluster ParseOne(const std::string& file) {
  auto docs = ParseManifests(file, ReadSourceFile(file));
  EXPECT_EQ(docs.size(), 1u) << file;
  if (docs.empty() || !docs[0].valid()) {
    ADD_FAILURE() << file << " is not valid";
    return {};
  }
  return *docs[0].object;
}

// Compares `actual` with the golden file, or rewrites it under VMLAB_UPDATE_GOLDEN.
void ExpectGolden(const std::string& golden, const std::string& actual) {
  if (testing_support::UpdateGolden()) {
    testing_support::WriteSourceFile(golden, actual);
    return;
  }
  EXPECT_EQ(actual, ReadSourceFile(golden))
      << "golden " << golden << " differs; VMLAB_UPDATE_GOLDEN=1 rewrites it";
}

TEST(CanonicalTest, MatchesGoldenForTheSeedLab) {
  ExpectGolden("tests/fixtures/golden/spk-lab.canonical.yaml",
               CanonicalYaml(ParseOne("examples/spk-lab.yaml")));
}

TEST(CanonicalTest, MatchesGoldenForEveryFieldSet) {
  ExpectGolden("tests/fixtures/golden/all-fields.canonical.yaml",
               CanonicalYaml(ParseOne("tests/fixtures/valid/all-fields.yaml")));
}

TEST(CanonicalTest, WritesEveryDefaultOfAMinimalLab) {
  ExpectGolden("tests/fixtures/golden/minimal.canonical.yaml",
               CanonicalYaml(ParseOne("examples/minimal.yaml")));
}

TEST(CanonicalTest, SpecHashesAreStableAcrossReleases) {
  // A changed hash makes the controller see every existing lab as changed:
  // change these only together with a migration note.
  std::string hashes;
  for (const char* file :
       {"examples/spk-lab.yaml", "examples/minimal.yaml", "tests/fixtures/valid/all-fields.yaml"}) {
    hashes += std::string(file) + " " + SpecHash(ParseOne(file).spec) + "\n";
  }
  ExpectGolden("tests/fixtures/golden/spec-hashes.txt", hashes);
}

TEST(CanonicalTest, ReorderedKeysAndExplicitDefaultsKeepTheHash) {
  const LabCluster example = ParseOne("examples/spk-lab.yaml");
  const LabCluster reordered = ParseOne("tests/fixtures/valid/spk-lab-reordered.yaml");
  EXPECT_EQ(SpecHash(reordered.spec), SpecHash(example.spec));
  EXPECT_EQ(CanonicalYaml(reordered), CanonicalYaml(example));
}

TEST(CanonicalTest, CanonicalFormParsesBackToItself) {
  for (const char* file :
       {"examples/spk-lab.yaml", "examples/minimal.yaml", "tests/fixtures/valid/all-fields.yaml",
        "tests/fixtures/valid/ambiguous-scalars.yaml"}) {
    const std::string canonical = CanonicalYaml(ParseOne(file));
    auto again = ParseManifests("canonical.yaml", canonical);
    ASSERT_EQ(again.size(), 1u);
    ASSERT_TRUE(again[0].valid()) << canonical;
    EXPECT_EQ(CanonicalYaml(*again[0].object), canonical) << file;
  }
}

TEST(CanonicalTest, MetadataDoesNotChangeTheSpecHash) {
  LabCluster lab = ParseOne("examples/spk-lab.yaml");
  const std::string before = SpecHash(lab.spec);
  lab.metadata.labels["team"] = "platform";
  lab.metadata.annotations["note"] = "x";
  EXPECT_EQ(SpecHash(lab.spec), before);
}

TEST(CanonicalTest, EveryChangedValueChangesTheHash) {
  const LabCluster base = ParseOne("tests/fixtures/valid/all-fields.yaml");
  const std::vector<std::function<void(LabClusterSpec&)>> edits = {
      [](auto& s) { s.kubernetes.version = "1.31.3"; },
      [](auto& s) { s.kubernetes.pod_cidr = *ParseIpv4Cidr("10.245.0.0/16"); },
      [](auto& s) { s.kubernetes.service_cidr = *ParseIpv4Cidr("10.113.0.0/16"); },
      [](auto& s) { s.kubernetes.cni = Cni::kCalico; },
      [](auto& s) { s.network.cidr = *ParseIpv4Cidr("192.168.151.0/24"); },
      [](auto& s) { s.network.domain = "other.test"; },
      [](auto& s) { s.control_plane.replicas = 1; },
      [](auto& s) { s.control_plane.cpus = 2; },
      [](auto& s) { s.control_plane.memory_mib = 8192; },
      [](auto& s) { s.control_plane.disk_gib = 41; },
      [](auto& s) { s.control_plane.endpoint.host = "api2"; },
      [](auto& s) { s.control_plane.endpoint.vip = *ParseIpv4Address("192.168.150.8"); },
      [](auto& s) { s.control_plane.endpoint.port = 8444; },
      [](auto& s) { s.workers.replicas = 6; },
      [](auto& s) { s.workers.cpus = 2; },
      [](auto& s) { s.workers.memory_mib = 2048; },
      [](auto& s) { s.workers.disk_gib = 11; },
      [](auto& s) { s.workers.extra_disk_gib = 0; },
      [](auto& s) { s.image.path = "/srv/images/other.qcow2"; },
      [](auto& s) { s.image.kernel = "/srv/images/vmlinuz-6.2"; },
      [](auto& s) { s.image.initrd = "/srv/images/initrd-6.2"; },
      [](auto& s) { s.image.cmdline = "root=/dev/vda"; },
      [](auto& s) { s.cache.apt = true; },
      [](auto& s) { s.cache.images = true; },
      [](auto& s) { s.drift_policy = DriftPolicy::kRemediate; },
      [](auto& s) { s.deletion_policy = DeletionPolicy::kDelete; },
      [](auto& s) { s.ssh_authorized_keys.pop_back(); },
  };
  std::set<std::string> hashes{SpecHash(base.spec)};
  for (std::size_t i = 0; i < edits.size(); ++i) {
    LabClusterSpec spec = base.spec;
    edits[i](spec);
    EXPECT_TRUE(hashes.insert(SpecHash(spec)).second) << "edit " << i << " kept the hash";
  }
}

TEST(CanonicalTest, DefaultsFollowTheAddressPlan) {
  const LabCluster lab = ParseOne("examples/minimal.yaml");
  EXPECT_EQ(lab.spec.control_plane.endpoint.vip.ToString(), "172.43.43.10");
  EXPECT_EQ(lab.spec.control_plane.endpoint.host, "solo");
  const auto nodes = PlanNodes(lab);
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0].name, "solo-cp-1");
  EXPECT_EQ(Ipv4Address{static_cast<std::uint32_t>(nodes[0].address)}.ToString(), "172.43.43.11");
}

TEST(CanonicalTest, PlansNodeNamesAndAddressesOfTheSeedLab) {
  const auto nodes = PlanNodes(ParseOne("examples/spk-lab.yaml"));
  std::vector<std::string> seen;
  for (const auto& node : nodes) {
    seen.push_back(node.name + "=" +
                   Ipv4Address{static_cast<std::uint32_t>(node.address)}.ToString() + "/" +
                   std::string(ToString(node.role)));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"spk-cp-1=172.42.42.11/control-plane",
                                            "spk-cp-2=172.42.42.12/control-plane",
                                            "spk-worker-1=172.42.42.101/worker"}));
}

}  // namespace
}  // namespace vmlab::crds
