#include "reconcilers/infrastructure/seed.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "../controller/scratch_dir.h"
#include "crds/labcluster_parse.h"
#include "fixtures.h"
#include "reconcilers/bootstrap/user_data.h"
#include "reconcilers/infrastructure/identity.h"
#include "shell.h"

namespace vmlab::reconcilers::infrastructure {
namespace {

using testing::HasSubstr;
using testing_support::Shell;

crds::LabCluster Load(const std::string& relative) { return testing_support::LoadLab(relative); }

TEST(SeedTest, NetworkConfigCarriesThePlannedAddressGatewayAndDns) {
  const auto lab = Load("examples/spk-lab.yaml");
  const auto nodes = crds::PlanNodes(lab);
  const auto& worker = nodes.back();
  const SeedFiles files = RenderSeedFiles(lab, worker, "#cloud-config\n");
  const YAML::Node config = YAML::Load(files.network_config);
  ASSERT_EQ(config["version"].as<int>(), 2);
  const YAML::Node eth0 = config["ethernets"]["eth0"];
  EXPECT_EQ(eth0["match"]["macaddress"].as<std::string>(), MacAddress("spk", worker.name));
  EXPECT_EQ(eth0["set-name"].as<std::string>(), "eth0");
  EXPECT_EQ(eth0["addresses"][0].as<std::string>(),
            crds::Ipv4Address{static_cast<std::uint32_t>(worker.address)}.ToString() + "/24");
  EXPECT_EQ(eth0["gateway4"].as<std::string>(), "172.42.42.1");
  EXPECT_EQ(eth0["nameservers"]["addresses"][0].as<std::string>(), "172.42.42.1");
  EXPECT_EQ(eth0["nameservers"]["search"][0].as<std::string>(), "lab.local");

  const YAML::Node meta = YAML::Load(files.meta_data);
  EXPECT_EQ(meta["instance-id"].as<std::string>(), "iid-" + DomainUuid("spk", worker.name));
  EXPECT_EQ(meta["local-hostname"].as<std::string>(), worker.name);
}

TEST(SeedTest, UserDataIsCloudConfigWithIdentityKeysAndTheRunner) {
  const auto lab = Load("tests/fixtures/valid/all-fields.yaml");
  ASSERT_FALSE(lab.spec.ssh_authorized_keys.empty());
  const auto secrets = bootstrap::MakeLabSecrets(lab, std::chrono::system_clock::now());
  ASSERT_TRUE(secrets);
  const auto node = crds::PlanNodes(lab).front();
  const std::string user_data = bootstrap::RenderUserData(lab, node, *secrets, {});
  ASSERT_TRUE(user_data.starts_with("#cloud-config\n"));
  const YAML::Node doc = YAML::Load(user_data);
  EXPECT_EQ(doc["hostname"].as<std::string>(), node.name);
  EXPECT_EQ(doc["fqdn"].as<std::string>(), node.name + "." + lab.spec.network.domain);
  EXPECT_FALSE(doc["manage_etc_hosts"].as<bool>());
  ASSERT_EQ(doc["ssh_authorized_keys"].size(), lab.spec.ssh_authorized_keys.size());
  EXPECT_EQ(doc["ssh_authorized_keys"][0].as<std::string>(), lab.spec.ssh_authorized_keys[0]);
  EXPECT_EQ(doc["runcmd"][0][1].as<std::string>(), "/etc/vmlab/bootstrap.sh");
  std::map<std::string, std::string> files;
  for (const auto& f : doc["write_files"]) {
    files[f["path"].as<std::string>()] = f["content"].as<std::string>();
  }
  EXPECT_TRUE(files.contains("/etc/vmlab/bootstrap.sh"));
  EXPECT_EQ(files["/etc/vmlab/pki/ca.key"], secrets->ca.key_pem) << "content survives YAML";
}

// The image is checked with isoinfo (genisoimage), the tool cloud-localds' images are read with.
TEST(SeedTest, IsoIsLabelledCidataAndHoldsTheFilesUnderTheirNames) {
  const auto lab = Load("examples/spk-lab.yaml");
  const auto node = crds::PlanNodes(lab).front();
  const auto secrets = bootstrap::MakeLabSecrets(lab, std::chrono::system_clock::now());
  ASSERT_TRUE(secrets);
  const SeedFiles files =
      RenderSeedFiles(lab, node, bootstrap::RenderUserData(lab, node, *secrets, {}));
  const auto iso = BuildSeedIso(files);
  ASSERT_TRUE(iso) << iso.error().message;
  EXPECT_EQ(iso->size() % 2048, 0u);

  testing_support::ScratchDir dir;
  const std::string path = (dir.path() / "seed.iso").string();
  std::ofstream(path, std::ios::binary) << *iso;
  const std::string descriptor = Shell("isoinfo -d -i " + path);
  EXPECT_THAT(descriptor, HasSubstr("Volume id: cidata"));
  EXPECT_THAT(descriptor, HasSubstr("Rock Ridge signatures version"));
  EXPECT_THAT(descriptor, HasSubstr("Joliet"));
  const std::string listing = Shell("isoinfo -R -f -i " + path);
  EXPECT_THAT(listing, HasSubstr("/meta-data"));
  EXPECT_THAT(listing, HasSubstr("/network-config"));
  EXPECT_THAT(listing, HasSubstr("/user-data"));
  EXPECT_EQ(Shell("isoinfo -R -i " + path + " -x /user-data"), files.user_data);
  EXPECT_EQ(Shell("isoinfo -R -i " + path + " -x /meta-data"), files.meta_data);
  EXPECT_EQ(Shell("isoinfo -R -i " + path + " -x /network-config"), files.network_config);
}

TEST(SeedTest, IsoIsReproducibleAndFollowsItsContent) {
  const auto lab = Load("examples/spk-lab.yaml");
  const auto nodes = crds::PlanNodes(lab);
  const auto a = BuildSeedIso(RenderSeedFiles(lab, nodes[0], "#cloud-config\n"));
  // Across a second boundary: no clock time may reach the image.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  const auto b = BuildSeedIso(RenderSeedFiles(lab, nodes[0], "#cloud-config\n"));
  const auto c = BuildSeedIso(RenderSeedFiles(lab, nodes[1], "#cloud-config\n"));
  ASSERT_TRUE(a && b && c);
  ASSERT_EQ(a->size(), b->size());
  // Compared by offset: printing two images on failure would bury the report.
  const auto diff = std::mismatch(a->begin(), a->end(), b->begin());
  EXPECT_EQ(diff.first, a->end()) << "first difference at byte " << (diff.first - a->begin());
  EXPECT_TRUE(*a != *c);
}

}  // namespace
}  // namespace vmlab::reconcilers::infrastructure
