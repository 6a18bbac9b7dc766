// The etcd cluster of a lab's control planes (kubeadm's stacked etcd, one
// member per control plane, named after its node, clients on
// https://NODE_IP:2379), reached through etcd's JSON gateway with a client
// certificate from the lab's etcd CA, the servers verified against it. Used
// to take a control plane out of the cluster before its VM goes: list the
// members, check the others' health, remove its member. cpprestsdk stays in
// the .cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "crds/result.h"

namespace vmlab::reconcilers::bootstrap {

struct EtcdMember {
  std::uint64_t id = 0;
  std::string name;  // kubeadm names a member after its node
  std::vector<std::string> client_urls;
  std::vector<std::string>
      peer_urls;  // https://NODE_IP:2380 (a member added but not yet started has no name)
  bool learner = false;
};

class EtcdClient {
 public:
  virtual ~EtcdClient() = default;
  [[nodiscard]] virtual Result<std::vector<EtcdMember>> ListMembers() = 0;
  // The member answers its /health with "true".
  [[nodiscard]] virtual bool Healthy(const EtcdMember& member) = 0;
  [[nodiscard]] virtual Status RemoveMember(std::uint64_t id) = 0;
};

struct EtcdAccess {
  std::vector<std::string> endpoints;  // https://HOST:PORT, tried in order
  std::string ca_pem;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::chrono::milliseconds timeout{5000};
};

[[nodiscard]] std::unique_ptr<EtcdClient> MakeEtcdClient(EtcdAccess access);

// The members of a MemberListResponse (JSON gateway; IDs are decimal strings).
[[nodiscard]] Result<std::vector<EtcdMember>> ParseMemberList(const std::string& json);

// Whether the member `name` may be removed without costing quorum: the
// members left must include a healthy majority of themselves. `message`
// says why not (or what was counted).
struct MemberRemoval {
  bool allowed = false;
  std::string message;
};
[[nodiscard]] MemberRemoval CheckMemberRemoval(const std::vector<EtcdMember>& members,
                                               const std::set<std::string>& healthy,
                                               const std::string& name);

}  // namespace vmlab::reconcilers::bootstrap
