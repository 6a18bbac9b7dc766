// IPv4 addresses and CIDR blocks as used by the LabCluster address plan.
//
// Values are plain, copyable and thread-compatible. Parsing is strict: four
// decimal octets without leading zeros, and a CIDR whose host bits are zero.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "crds/result.h"

namespace vmlab::crds {

struct Ipv4Address {
  std::uint32_t value = 0;  // host byte order

  [[nodiscard]] std::string ToString() const;
  friend bool operator==(Ipv4Address, Ipv4Address) = default;
  friend auto operator<=>(Ipv4Address, Ipv4Address) = default;
};

struct Ipv4Cidr {
  Ipv4Address network;
  int prefix_length = 0;

  [[nodiscard]] std::uint32_t Mask() const;
  [[nodiscard]] std::uint64_t Size() const { return std::uint64_t{1} << (32 - prefix_length); }
  [[nodiscard]] Ipv4Address Broadcast() const;
  [[nodiscard]] bool Contains(Ipv4Address address) const;
  [[nodiscard]] bool Overlaps(const Ipv4Cidr& other) const;
  // The address `offset` past the network address; the caller checks Contains().
  [[nodiscard]] std::uint64_t OffsetAddress(std::uint64_t offset) const {
    return std::uint64_t{network.value} + offset;
  }
  [[nodiscard]] std::string ToString() const;
  friend bool operator==(const Ipv4Cidr&, const Ipv4Cidr&) = default;
};

// Parses dotted-quad "a.b.c.d". The error message says what is wrong.
[[nodiscard]] Result<Ipv4Address> ParseIpv4Address(std::string_view text);

// Parses "a.b.c.d/n". Host bits set is an error that names the aligned block.
[[nodiscard]] Result<Ipv4Cidr> ParseIpv4Cidr(std::string_view text);

}  // namespace vmlab::crds
