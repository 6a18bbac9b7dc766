#include "reconcilers/infrastructure/preflight.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "../controller/scratch_dir.h"
#include "crds/labcluster_parse.h"
#include "reconcilers/infrastructure/identity.h"
#include "reconcilers/infrastructure/libvirt_xml.h"

namespace vmlab::reconcilers::infrastructure {
namespace {

using testing::HasSubstr;

crds::LabCluster Lab(const std::string& cidr, int workers = 1, int memory = 2048) {
  auto docs = crds::ParseManifests(
      "lab.yaml",
      "apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata: {name: pf}\nspec:\n"
      "  kubernetes: {version: \"1.30.4\"}\n  network: {cidr: " +
          cidr +
          "}\n"
          "  workers: {replicas: " +
          std::to_string(workers) + ", memoryMiB: " + std::to_string(memory) + "}\n");
  EXPECT_TRUE(docs.at(0).valid());
  return *docs.at(0).object;
}

TEST(PreflightTest, PassesOnAFreeNetworkWithRoom) {
  const auto lab = Lab("172.42.42.0/24");
  PreflightInput input{&lab, HostInfo{2, 24000}, {}, {}, false};
  EXPECT_EQ(CheckPreflight(input), std::nullopt);
}

TEST(PreflightTest, RefusesAnOverlapWithAForeignLibvirtNetwork) {
  const auto lab = Lab("192.168.122.0/24");
  NetworkInfo other{"default", true, std::nullopt, {}, {"192.168.122.0/24"}};
  PreflightInput input{&lab, std::nullopt, {other}, {}, false};
  const auto problem = CheckPreflight(input);
  ASSERT_TRUE(problem.has_value());
  EXPECT_THAT(*problem, HasSubstr("overlaps libvirt network \"default\" (192.168.122.0/24)"));
}

TEST(PreflightTest, RefusesAnOverlapWithAHostRouteButNotWithItsOwnBridge) {
  const auto lab = Lab("10.20.0.0/16");
  PreflightInput input{&lab, std::nullopt, {}, {{"eth1", "10.20.30.0/24"}}, false};
  EXPECT_THAT(CheckPreflight(input).value_or(""),
              HasSubstr("overlaps the host route 10.20.30.0/24 on eth1"));
  input.routes = {{BridgeName("pf"), "10.20.0.0/16"}};
  EXPECT_EQ(CheckPreflight(input), std::nullopt) << "the lab's own bridge route is not a conflict";
}

TEST(PreflightTest, RefusesALabLargerThanTheHost) {
  const auto lab = Lab("172.42.42.0/24", 10, 4096);
  PreflightInput input{&lab, HostInfo{16, 16384}, {}, {}, false};
  EXPECT_THAT(CheckPreflight(input).value_or(""),
              HasSubstr("the lab needs 43008 MiB of memory in all but the host has 16384 MiB"));
  input.host = HostInfo{1, 1 << 20};
  EXPECT_THAT(CheckPreflight(input).value_or(""),
              HasSubstr("asks for 2 vCPUs but the host has 1 CPUs"));
}

TEST(PreflightTest, RefusesAMissingBaseImage) {
  const auto lab = Lab("172.42.42.0/24");
  PreflightInput input{&lab, std::nullopt, {}, {}, true};
  EXPECT_THAT(CheckPreflight(input).value_or(""), HasSubstr("base image /var/lib/vmlab/images/"));
}

TEST(PreflightTest, ReadsRoutesInProcNetRouteFormat) {
  testing_support::ScratchDir dir;
  std::ofstream(dir.path() / "route")
      << "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
      << "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
      << "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
      << "br0\t00002A0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
  const auto routes = ReadHostRoutes((dir.path() / "route").string());
  ASSERT_EQ(routes.size(), 2u) << "the default route is left out";
  EXPECT_EQ(routes[0].interface, "eth0");
  EXPECT_EQ(routes[0].cidr, "192.0.2.0/24");
  EXPECT_EQ(routes[1].cidr, "10.42.0.0/16");
}

TEST(PreflightTest, ParsesNetworkSubnetsFromPrefixOrNetmask) {
  EXPECT_EQ(
      ParseNetworkCidrs("<network><ip address='192.168.122.1' netmask='255.255.255.0'/></network>"),
      std::vector<std::string>{"192.168.122.0/24"});
  EXPECT_EQ(ParseNetworkCidrs("<network><ip address='10.1.2.1' prefix='16'/><ip family='ipv6' "
                              "address='fd00::1' prefix='64'/></network>"),
            std::vector<std::string>{"10.1.0.0/16"});
}

}  // namespace
}  // namespace vmlab::reconcilers::infrastructure
