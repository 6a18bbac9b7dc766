// Stable identities of a lab's libvirt objects, derived from names alone so
// that a restarted controller (or another machine) computes the same ones:
// domain UUIDs and MAC addresses from SHA-256(lab, node), the bridge name
// from the lab (unique, and within Linux's 15-character limit).
#pragma once

#include <string>
#include <string_view>

namespace vmlab::reconcilers::infrastructure {

// "vmlab-<lab>", the libvirt network's name.
[[nodiscard]] std::string NetworkName(std::string_view lab);
// "vmlab-" + 8 hex digits of SHA-256(lab): 14 characters.
[[nodiscard]] std::string BridgeName(std::string_view lab);
// An RFC 4122 version-5-style UUID from SHA-256("vmlab/" lab "/" node).
[[nodiscard]] std::string DomainUuid(std::string_view lab, std::string_view node);
// 52:54:00:xx:xx:xx (QEMU's locally administered prefix) from the same hash.
[[nodiscard]] std::string MacAddress(std::string_view lab, std::string_view node);

}  // namespace vmlab::reconcilers::infrastructure
