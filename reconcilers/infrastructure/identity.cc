#include "reconcilers/infrastructure/identity.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <array>
#include <cstdlib>

namespace vmlab::reconcilers::infrastructure {
namespace {

std::array<unsigned char, 32> Sha256(std::string_view text) {
  std::array<unsigned char, 32> digest{};
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1) {
    std::abort();  // sha256 is always available in OpenSSL 3's default provider
  }
  return digest;
}

std::array<unsigned char, 32> NodeHash(std::string_view lab, std::string_view node) {
  return Sha256(fmt::format("vmlab/{}/{}", lab, node));
}

}  // namespace

std::string NetworkName(std::string_view lab) { return fmt::format("vmlab-{}", lab); }

std::string BridgeName(std::string_view lab) {
  const auto h = Sha256(fmt::format("vmlab-bridge/{}", lab));
  return fmt::format("vmlab-{:02x}{:02x}{:02x}{:02x}", h[0], h[1], h[2], h[3]);
}

std::string DomainUuid(std::string_view lab, std::string_view node) {
  auto h = NodeHash(lab, node);
  h[6] = static_cast<unsigned char>((h[6] & 0x0f) | 0x50);  // version 5 (name-based, SHA)
  h[8] = static_cast<unsigned char>((h[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return fmt::format(
      "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:"
      "02x}{:02x}",
      h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14],
      h[15]);
}

std::string MacAddress(std::string_view lab, std::string_view node) {
  const auto h = NodeHash(lab, node);
  return fmt::format("52:54:00:{:02x}:{:02x}:{:02x}", h[16], h[17], h[18]);
}

}  // namespace vmlab::reconcilers::infrastructure
