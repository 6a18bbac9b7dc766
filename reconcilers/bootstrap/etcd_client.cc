#include "reconcilers/bootstrap/etcd_client.h"

#include <cpprest/json.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "reconcilers/bootstrap/https_request.h"

namespace vmlab::reconcilers::bootstrap {
namespace {

class HttpsEtcdClient final : public EtcdClient {
 public:
  explicit HttpsEtcdClient(EtcdAccess access)
      : access_(std::move(access)),
        identity_{access_.ca_pem, access_.client_cert_pem, access_.client_key_pem,
                  access_.timeout} {}

  Result<std::vector<EtcdMember>> ListMembers() override {
    auto response = Post("/v3/cluster/member/list", "{}");
    if (!response) return std::unexpected(response.error());
    return ParseMemberList(response->body);
  }

  bool Healthy(const EtcdMember& member) override {
    for (const auto& url : member.client_urls) {
      auto response = HttpsRequest(identity_, url, "GET", "/health");
      if (!response || response->status != 200) continue;
      try {
        const auto health = web::json::value::parse(response->body);
        if (health.has_string_field("health") && health.at("health").as_string() == "true")
          return true;
      } catch (const std::exception&) {
      }
    }
    return false;
  }

  Status RemoveMember(std::uint64_t id) override {
    auto response = Post("/v3/cluster/member/remove", fmt::format(R"({{"ID":"{}"}})", id));
    if (!response) return std::unexpected(response.error());
    return {};
  }

 private:
  // POSTs to the first endpoint that answers; an etcd error is kFailedPrecondition.
  Result<HttpsResponse> Post(const std::string& path, const std::string& body) {
    std::vector<std::string> errors;
    for (const auto& endpoint : access_.endpoints) {
      auto response = HttpsRequest(identity_, endpoint, "POST", path, body, "application/json");
      if (!response) {
        errors.push_back(response.error().message);
        continue;
      }
      if (response->status != 200) {
        return MakeError(ErrorCode::kFailedPrecondition,
                         fmt::format("etcd {} {}: {}", endpoint, path, ResponseMessage(*response)));
      }
      return response;
    }
    return MakeError(ErrorCode::kUnavailable,
                     errors.empty() ? std::string("etcd: no endpoint to ask")
                                    : fmt::format("etcd: {}", fmt::join(errors, "; ")));
  }

  const EtcdAccess access_;
  const TlsClientIdentity identity_;
};

}  // namespace

std::unique_ptr<EtcdClient> MakeEtcdClient(EtcdAccess access) {
  return std::make_unique<HttpsEtcdClient>(std::move(access));
}

Result<std::vector<EtcdMember>> ParseMemberList(const std::string& json) {
  try {
    const auto list = web::json::value::parse(json);
    std::vector<EtcdMember> members;
    for (const auto& item : list.at("members").as_array()) {
      EtcdMember member;
      const auto& id = item.at("ID");
      member.id = id.is_string() ? std::stoull(id.as_string())
                                 : static_cast<std::uint64_t>(id.as_number().to_uint64());
      if (item.has_string_field("name")) member.name = item.at("name").as_string();
      if (item.has_array_field("clientURLs")) {
        for (const auto& url : item.at("clientURLs").as_array())
          member.client_urls.push_back(url.as_string());
      }
      if (item.has_array_field("peerURLs")) {
        for (const auto& url : item.at("peerURLs").as_array())
          member.peer_urls.push_back(url.as_string());
      }
      member.learner = item.has_boolean_field("isLearner") && item.at("isLearner").as_bool();
      members.push_back(std::move(member));
    }
    return members;
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("not an etcd member list: {}", e.what()));
  }
}

MemberRemoval CheckMemberRemoval(const std::vector<EtcdMember>& members,
                                 const std::set<std::string>& healthy, const std::string& name) {
  std::size_t voters_left = 0;
  std::size_t healthy_left = 0;
  std::vector<std::string> unhealthy;
  for (const auto& m : members) {
    if (m.name == name || m.learner) continue;
    ++voters_left;
    if (healthy.contains(m.name)) {
      ++healthy_left;
    } else {
      unhealthy.push_back(m.name.empty() ? fmt::format("{:x}", m.id) : m.name);
    }
  }
  const std::size_t quorum = voters_left / 2 + 1;
  MemberRemoval removal;
  removal.allowed = voters_left > 0 && healthy_left >= quorum;
  removal.message = voters_left == 0
                        ? fmt::format("{} is etcd's last member", name)
                        : fmt::format("without {}, etcd has {} member(s), {} healthy (quorum {}){}",
                                      name, voters_left, healthy_left, quorum,
                                      unhealthy.empty() ? ""
                                                        : fmt::format("; not healthy: {}",
                                                                      fmt::join(unhealthy, ", ")));
  return removal;
}

}  // namespace vmlab::reconcilers::bootstrap
