#include "crds/ipv4.h"

#include <fmt/format.h>

#include <charconv>

namespace vmlab::crds {
namespace {

// Parses a decimal number in [0, max] with no sign and no leading zeros.
bool ParseDecimal(std::string_view text, unsigned max, unsigned& out) {
  if (text.empty() || text.size() > 3 || (text.size() > 1 && text[0] == '0')) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && out <= max;
}

}  // namespace

std::string Ipv4Address::ToString() const {
  return fmt::format("{}.{}.{}.{}", value >> 24, (value >> 16) & 0xff, (value >> 8) & 0xff,
                     value & 0xff);
}

std::uint32_t Ipv4Cidr::Mask() const {
  return prefix_length == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix_length);
}

Ipv4Address Ipv4Cidr::Broadcast() const { return Ipv4Address{network.value | ~Mask()}; }

bool Ipv4Cidr::Contains(Ipv4Address address) const {
  return (address.value & Mask()) == network.value;
}

bool Ipv4Cidr::Overlaps(const Ipv4Cidr& other) const {
  return Contains(other.network) || other.Contains(network);
}

std::string Ipv4Cidr::ToString() const {
  return fmt::format("{}/{}", network.ToString(), prefix_length);
}

Result<Ipv4Address> ParseIpv4Address(std::string_view text) {
  std::uint32_t value = 0;
  std::string_view rest = text;
  for (int octet = 0; octet < 4; ++octet) {
    const auto dot = rest.find('.');
    const std::string_view part = octet < 3 ? rest.substr(0, dot) : rest;
    unsigned number = 0;
    if ((octet < 3 && dot == std::string_view::npos) || !ParseDecimal(part, 255, number)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("\"{}\" is not an IPv4 address; write four numbers 0-255 "
                                   "separated by dots, such as 172.42.42.10",
                                   text));
    }
    value = (value << 8) | number;
    if (octet < 3) rest.remove_prefix(dot + 1);
  }
  return Ipv4Address{value};
}

Result<Ipv4Cidr> ParseIpv4Cidr(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("\"{}\" is not a CIDR block; add a prefix length, such as "
                                 "172.42.42.0/24",
                                 text));
  }
  auto address = ParseIpv4Address(text.substr(0, slash));
  unsigned prefix = 0;
  if (!address || !ParseDecimal(text.substr(slash + 1), 32, prefix)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("\"{}\" is not a CIDR block; write an IPv4 network address and "
                                 "a prefix length 0-32, such as 172.42.42.0/24",
                                 text));
  }
  Ipv4Cidr cidr{*address, static_cast<int>(prefix)};
  if ((address->value & cidr.Mask()) != address->value) {
    const Ipv4Cidr aligned{Ipv4Address{address->value & cidr.Mask()}, cidr.prefix_length};
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("\"{}\" has host bits set; did you mean {}?", text, aligned.ToString()));
  }
  return cidr;
}

}  // namespace vmlab::crds
