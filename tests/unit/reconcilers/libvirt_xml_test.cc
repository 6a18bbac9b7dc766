#include "reconcilers/infrastructure/libvirt_xml.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "../controller/scratch_dir.h"
#include "crds/canonical.h"
#include "crds/labcluster_parse.h"
#include "fixtures.h"
#include "reconcilers/infrastructure/identity.h"
#include "reconcilers/infrastructure/lab_layout.h"

namespace vmlab::reconcilers::infrastructure {
namespace {

using testing::HasSubstr;
using testing_support::ExpectGolden;
using testing_support::kSourceDir;

crds::LabCluster Load(const std::string& relative) { return testing_support::LoadLab(relative); }

// libvirt's own schema check (virt-xml-validate, from libvirt-clients).
void ExpectValid(const std::string& xml, const char* schema) {
  testing_support::ScratchDir dir;
  const auto file = dir.path() / "object.xml";
  std::ofstream(file) << xml;
  const std::string command = "virt-xml-validate " + file.string() + " " + schema + " > " +
                              (dir.path() / "out").string() + " 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream out(dir.path() / "out");
  std::ostringstream text;
  text << out.rdbuf();
  EXPECT_EQ(status, 0) << schema << " XML rejected by virt-xml-validate:\n" << text.str() << xml;
}

TEST(LibvirtXmlTest, SeedLabNetworkMatchesGoldenAndValidates) {
  const auto lab = Load("examples/spk-lab.yaml");
  const std::string xml = RenderNetworkXml(lab, crds::SpecHash(lab.spec));
  ExpectGolden("tests/fixtures/golden/xml/spk-network.xml", xml);
  ExpectValid(xml, "network");
  EXPECT_THAT(xml, HasSubstr(R"(<host ip="172.42.42.10">)"));
  EXPECT_THAT(xml, HasSubstr("<hostname>spkcluster.lab.local</hostname>"));
}

TEST(LibvirtXmlTest, DomainsMatchGoldenAndValidate) {
  const auto lab = Load("examples/spk-lab.yaml");
  const std::string hash = crds::SpecHash(lab.spec);
  for (const auto& node : crds::PlanNodes(lab)) {
    const std::string xml =
        RenderDomainXml(lab, node, HostConfigFor("/var/lib/vmlab", lab, node, "qemu"), hash);
    ExpectGolden("tests/fixtures/golden/xml/" + node.name + ".xml", xml);
    ExpectValid(xml, "domain");
  }
}

TEST(LibvirtXmlTest, EveryFieldRendersValidXml) {
  const auto lab = Load("tests/fixtures/valid/all-fields.yaml");
  const std::string hash = crds::SpecHash(lab.spec);
  ExpectValid(RenderNetworkXml(lab, hash), "network");
  for (const char* type : {"kvm", "qemu"}) {
    for (const auto& node : crds::PlanNodes(lab)) {
      const std::string xml =
          RenderDomainXml(lab, node, HostConfigFor("/srv/vmlab", lab, node, type), hash);
      ExpectValid(xml, "domain");
      if (node.role == crds::NodeRole::kWorker) {
        EXPECT_THAT(xml, HasSubstr("-data.qcow2")) << "extraDiskGiB > 0 gives workers a data disk";
      }
      EXPECT_THAT(xml, HasSubstr("<kernel>/srv/images/vmlinuz-6.1</kernel>"));
    }
  }
  ExpectValid(RenderVolumeXml("n-root.qcow2", 20, "/srv/base.qcow2", "qcow2"), "storagevol");
}

TEST(LibvirtXmlTest, OwnershipRoundTrips) {
  const auto lab = Load("examples/spk-lab.yaml");
  const auto node = crds::PlanNodes(lab).at(0);
  const auto owner =
      ParseOwnership(RenderDomainXml(lab, node, HostConfigFor("/v", lab, node, "qemu"), "abc"));
  ASSERT_TRUE(owner.has_value());
  EXPECT_EQ(owner->lab, "spk");
  EXPECT_EQ(owner->node, "spk-cp-1");
  EXPECT_EQ(owner->role, "control-plane");
  EXPECT_EQ(owner->spec_hash, "abc");
  EXPECT_FALSE(ParseOwnership("<domain><name>spk-cp-1</name></domain>").has_value())
      << "a look-alike without vmlab's element is not ours";
  EXPECT_FALSE(
      ParseOwnership(
          R"(<domain><metadata><owner xmlns="https://example.com/other" lab="spk"/></metadata></domain>)")
          .has_value());
  EXPECT_FALSE(ParseOwnership("not xml").has_value());
}

TEST(IdentityTest, IsStableAndWellFormed) {
  EXPECT_EQ(DomainUuid("spk", "spk-cp-1"), DomainUuid("spk", "spk-cp-1"));
  EXPECT_EQ(DomainUuid("spk", "spk-cp-1").size(), 36u);
  EXPECT_EQ(DomainUuid("spk", "spk-cp-1")[14], '5') << "version 5";
  EXPECT_THAT(MacAddress("spk", "spk-cp-1"), testing::StartsWith("52:54:00:"));
  EXPECT_EQ(NetworkName("spk"), "vmlab-spk");
  EXPECT_LE(BridgeName("a-very-long-lab-name").size(), 15u);
  EXPECT_NE(BridgeName("a"), BridgeName("b"));
}

TEST(IdentityTest, MacsAndUuidsDifferAcrossManyNodes) {
  std::set<std::string> macs;
  std::set<std::string> uuids;
  int nodes = 0;
  for (int lab = 0; lab < 20; ++lab) {
    for (int i = 1; i <= 150; ++i) {
      const std::string name = "lab" + std::to_string(lab);
      const std::string node = name + "-worker-" + std::to_string(i);
      macs.insert(MacAddress(name, node));
      uuids.insert(DomainUuid(name, node));
      ++nodes;
    }
  }
  EXPECT_EQ(uuids.size(), static_cast<std::size_t>(nodes));
  EXPECT_EQ(macs.size(), static_cast<std::size_t>(nodes));
}

std::string ReadFixture(const std::string& relative) {
  std::ifstream in(kSourceDir / relative);
  std::ostringstream text;
  text << in.rdbuf();
  EXPECT_FALSE(text.str().empty()) << relative;
  return text.str();
}

// Captured from this project's machines: /dev/kvm exists and libvirt offers
// virttype kvm, but the host CPU it exposes lacks SSE3 (pni), so no normal
// x86-64 guest boots under it.
TEST(LibvirtXmlTest, KvmThatCannotRunTheBaselineCpuIsNotUsed) {
  const auto verdict =
      ParseKvmVerdict(ReadFixture("tests/fixtures/libvirt/domcaps-kvm-unusable.xml"));
  EXPECT_FALSE(verdict.usable);
  EXPECT_THAT(verdict.reason, HasSubstr("cannot run the x86-64 baseline CPU model qemu64"));
  EXPECT_THAT(verdict.reason, HasSubstr("lacks pni"));
}

TEST(LibvirtXmlTest, KvmThatRunsTheBaselineCpuIsUsed) {
  const auto verdict =
      ParseKvmVerdict(ReadFixture("tests/fixtures/libvirt/domcaps-kvm-usable.xml"));
  EXPECT_TRUE(verdict.usable) << verdict.reason;
}

TEST(LibvirtXmlTest, CapabilitiesOfAnotherVirtTypeOrGarbageAreNotKvm) {
  std::string qemu = ReadFixture("tests/fixtures/libvirt/domcaps-kvm-usable.xml");
  qemu.replace(qemu.find("<domain>kvm</domain>"), 20, "<domain>qemu</domain>");
  EXPECT_FALSE(ParseKvmVerdict(qemu).usable);
  EXPECT_FALSE(ParseKvmVerdict("not xml").usable);
  EXPECT_FALSE(ParseKvmVerdict("").usable);
}

}  // namespace
}  // namespace vmlab::reconcilers::infrastructure
