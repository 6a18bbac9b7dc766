#include "crds/ipv4.h"

#include <gtest/gtest.h>

namespace vmlab::crds {
namespace {

TEST(Ipv4Test, ParsesAndPrintsAddresses) {
  auto address = ParseIpv4Address("172.42.42.10");
  ASSERT_TRUE(address.has_value());
  EXPECT_EQ(address->value, 0xac2a2a0au);
  EXPECT_EQ(address->ToString(), "172.42.42.10");
}

TEST(Ipv4Test, RejectsMalformedAddresses) {
  for (const char* text : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.x", "1..2.3",
                           " 1.2.3.4", "1.2.3.4 ", "-1.2.3.4"}) {
    EXPECT_FALSE(ParseIpv4Address(text).has_value()) << text;
  }
}

TEST(Ipv4Test, ParsesCidrAndComputesRange) {
  auto cidr = ParseIpv4Cidr("172.42.42.0/24");
  ASSERT_TRUE(cidr.has_value());
  EXPECT_EQ(cidr->Size(), 256u);
  EXPECT_EQ(cidr->Broadcast().ToString(), "172.42.42.255");
  EXPECT_TRUE(cidr->Contains(*ParseIpv4Address("172.42.42.254")));
  EXPECT_FALSE(cidr->Contains(*ParseIpv4Address("172.42.43.1")));
  EXPECT_EQ(ParseIpv4Cidr("0.0.0.0/0")->Size(), std::uint64_t{1} << 32);
}

TEST(Ipv4Test, CidrWithHostBitsSuggestsTheAlignedBlock) {
  auto cidr = ParseIpv4Cidr("10.217.0.1/16");
  ASSERT_FALSE(cidr.has_value());
  EXPECT_EQ(cidr.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(cidr.error().message.find("did you mean 10.217.0.0/16?"), std::string::npos)
      << cidr.error().message;
}

TEST(Ipv4Test, DetectsOverlapsBothWays) {
  const auto big = *ParseIpv4Cidr("10.0.0.0/8");
  const auto small = *ParseIpv4Cidr("10.217.0.0/16");
  const auto other = *ParseIpv4Cidr("172.42.42.0/24");
  EXPECT_TRUE(big.Overlaps(small));
  EXPECT_TRUE(small.Overlaps(big));
  EXPECT_FALSE(small.Overlaps(other));
}

}  // namespace
}  // namespace vmlab::crds
