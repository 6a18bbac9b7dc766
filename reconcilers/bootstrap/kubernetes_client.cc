#include "reconcilers/bootstrap/kubernetes_client.h"

#include <cpprest/http_client.h>
#include <cpprest/json.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <mutex>

#include "controller/status_store.h"
#include "reconcilers/bootstrap/https_request.h"

namespace vmlab::reconcilers::bootstrap {
namespace {

std::string DecodeBase64(const std::string& text) {
  const auto bytes = utility::conversions::from_base64(text);
  return std::string(bytes.begin(), bytes.end());
}

using Response = HttpsResponse;

std::string Escape(const std::string& segment) { return web::uri::encode_data_string(segment); }

class HttpsKubernetesClient final : public KubernetesClient {
 public:
  explicit HttpsKubernetesClient(KubernetesAccess access) : access_(std::move(access)) {}

  Result<std::vector<KubeNode>> ListNodes() override {
    auto response = Request(web::http::methods::GET, "/api/v1/nodes");
    if (!response) return std::unexpected(response.error());
    if (auto failed = Expect(*response, "GET", "/api/v1/nodes", {200}); !failed) {
      return std::unexpected(failed.error());
    }
    return ParseNodeList(response->body);
  }

  Status SetUnschedulable(const std::string& node, bool unschedulable) override {
    const std::string path = "/api/v1/nodes/" + Escape(node);
    auto response = Request(
        web::http::methods::PATCH, path,
        unschedulable ? R"({"spec":{"unschedulable":true}})" : R"({"spec":{"unschedulable":null}})",
        "application/strategic-merge-patch+json");
    if (!response) return std::unexpected(response.error());
    return Expect(*response, "PATCH", path, {200});
  }

  Result<std::vector<KubePod>> ListPods(const std::string& node) override {
    const std::string path = "/api/v1/pods?fieldSelector=" + Escape("spec.nodeName=" + node);
    auto response = Request(web::http::methods::GET, path);
    if (!response) return std::unexpected(response.error());
    if (auto failed = Expect(*response, "GET", path, {200}); !failed) {
      return std::unexpected(failed.error());
    }
    return ParsePodList(response->body);
  }

  Result<Eviction> EvictPod(const KubePod& pod) override {
    auto group_version = EvictionGroupVersion();
    if (!group_version) return std::unexpected(group_version.error());
    const std::string path =
        fmt::format("/api/v1/namespaces/{}/pods/{}/eviction", Escape(pod.ns), Escape(pod.name));
    web::json::value body;
    body["apiVersion"] = web::json::value::string(*group_version);
    body["kind"] = web::json::value::string("Eviction");
    body["metadata"]["name"] = web::json::value::string(pod.name);
    body["metadata"]["namespace"] = web::json::value::string(pod.ns);
    auto response = Request(web::http::methods::POST, path, body.serialize(), "application/json");
    if (!response) return std::unexpected(response.error());
    if (response->status == 429)
      return Eviction{EvictionOutcome::kBlocked, ResponseMessage(*response)};
    if (response->status == 404) return Eviction{EvictionOutcome::kGone, ""};
    if (auto failed = Expect(*response, "POST", path, {200, 201}); !failed) {
      return std::unexpected(failed.error());
    }
    return Eviction{EvictionOutcome::kEvicted, ""};
  }

  Status DeleteNode(const std::string& node) override {
    const std::string path = "/api/v1/nodes/" + Escape(node);
    auto response = Request(web::http::methods::DEL, path);
    if (!response) return std::unexpected(response.error());
    return Expect(*response, "DELETE", path, {200, 202, 404});
  }

  Status CreateBootstrapToken(const BootstrapTokenSecret& token) override {
    auto body = BootstrapTokenSecretJson(token);
    if (!body) return std::unexpected(body.error());
    const std::string path = "/api/v1/namespaces/kube-system/secrets";
    auto response = Request(web::http::methods::POST, path, *body, "application/json");
    if (!response) return std::unexpected(response.error());
    return Expect(*response, "POST", path, {200, 201, 409});
  }

 private:
  // The Eviction's group version the server serves: policy/v1 from
  // Kubernetes 1.22, policy/v1beta1 before (1.20 has no policy/v1). Asked
  // once (GET /apis/policy) and kept for the client's life.
  Result<std::string> EvictionGroupVersion() {
    std::lock_guard lock(eviction_mutex_);
    if (!eviction_group_version_.empty()) return eviction_group_version_;
    auto response = Request(web::http::methods::GET, "/apis/policy");
    if (!response) return std::unexpected(response.error());
    if (auto failed = Expect(*response, "GET", "/apis/policy", {200}); !failed) {
      return std::unexpected(failed.error());
    }
    auto versions = ParseApiGroupVersions(response->body);
    if (!versions) return std::unexpected(versions.error());
    for (const char* wanted : {"policy/v1", "policy/v1beta1"}) {
      if (std::find(versions->begin(), versions->end(), wanted) != versions->end()) {
        eviction_group_version_ = wanted;
        return eviction_group_version_;
      }
    }
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("Kubernetes API {} serves neither policy/v1 nor policy/v1beta1 "
                                 "(it offers {}): vmlab cannot evict pods there",
                                 access_.server, fmt::join(*versions, ", ")));
  }

  Status Expect(const Response& response, const char* method, const std::string& path,
                std::initializer_list<int> accepted) const {
    if (std::find(accepted.begin(), accepted.end(), response.status) != accepted.end()) return {};
    const ErrorCode code = response.status == 401 || response.status == 403
                               ? ErrorCode::kPermissionDenied
                           : response.status == 404 ? ErrorCode::kNotFound
                                                    : ErrorCode::kUnavailable;
    return MakeError(code, fmt::format("Kubernetes API {} {} {}: {}", access_.server, method, path,
                                       ResponseMessage(response)));
  }

  Result<Response> Request(const std::string& method, const std::string& path,
                           const std::string& body = "", const std::string& content_type = "") {
    const TlsClientIdentity identity{access_.ca_pem, access_.client_cert_pem,
                                     access_.client_key_pem, access_.timeout};
    auto response = HttpsRequest(identity, access_.server, method, path, body, content_type);
    if (!response) {
      return MakeError(ErrorCode::kUnavailable,
                       fmt::format("Kubernetes API {}", response.error().message));
    }
    return std::move(*response);
  }

  const KubernetesAccess access_;
  std::mutex eviction_mutex_;
  std::string eviction_group_version_;  // empty until discovered
};

}  // namespace

Result<std::vector<std::string>> ParseApiGroupVersions(const std::string& json) {
  try {
    const web::json::value group = web::json::value::parse(json);
    std::vector<std::string> versions;
    for (const auto& version : group.at("versions").as_array()) {
      versions.push_back(version.at("groupVersion").as_string());
    }
    return versions;
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("not a Kubernetes APIGroup: {}", e.what()));
  }
}

Result<std::vector<KubeNode>> ParseNodeList(const std::string& json) {
  try {
    const web::json::value list = web::json::value::parse(json);
    std::vector<KubeNode> nodes;
    for (const auto& item : list.at("items").as_array()) {
      KubeNode node;
      node.name = item.at("metadata").at("name").as_string();
      if (item.has_object_field("spec") && item.at("spec").has_boolean_field("unschedulable")) {
        node.unschedulable = item.at("spec").at("unschedulable").as_bool();
      }
      if (item.has_object_field("status") && item.at("status").has_array_field("conditions")) {
        for (const auto& c : item.at("status").at("conditions").as_array()) {
          if (c.at("type").as_string() == "Ready")
            node.ready = c.at("status").as_string() == "True";
        }
      }
      nodes.push_back(std::move(node));
    }
    return nodes;
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("not a Kubernetes NodeList: {}", e.what()));
  }
}

Result<std::vector<KubePod>> ParsePodList(const std::string& json) {
  try {
    const web::json::value list = web::json::value::parse(json);
    std::vector<KubePod> pods;
    for (const auto& item : list.at("items").as_array()) {
      KubePod pod;
      const auto& metadata = item.at("metadata");
      pod.name = metadata.at("name").as_string();
      pod.ns =
          metadata.has_string_field("namespace") ? metadata.at("namespace").as_string() : "default";
      pod.terminating =
          metadata.has_field("deletionTimestamp") && !metadata.at("deletionTimestamp").is_null();
      if (metadata.has_object_field("annotations")) {
        pod.mirror = metadata.at("annotations").has_field("kubernetes.io/config.mirror");
      }
      if (metadata.has_array_field("ownerReferences")) {
        for (const auto& owner : metadata.at("ownerReferences").as_array()) {
          if (owner.has_string_field("kind") && owner.at("kind").as_string() == "DaemonSet")
            pod.daemon_set = true;
        }
      }
      if (item.has_object_field("status") && item.at("status").has_string_field("phase")) {
        const auto phase = item.at("status").at("phase").as_string();
        pod.finished = phase == "Succeeded" || phase == "Failed";
      }
      pods.push_back(std::move(pod));
    }
    return pods;
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("not a Kubernetes PodList: {}", e.what()));
  }
}

Result<std::string> BootstrapTokenSecretJson(const BootstrapTokenSecret& token) {
  const auto dot = token.token.find('.');
  if (dot != 6 || token.token.size() != 23) {
    return MakeError(ErrorCode::kInvalidArgument, "a bootstrap token is [a-z0-9]{6}.[a-z0-9]{16}");
  }
  const std::string id = token.token.substr(0, dot);
  web::json::value secret;
  secret["apiVersion"] = web::json::value::string("v1");
  secret["kind"] = web::json::value::string("Secret");
  secret["type"] = web::json::value::string("bootstrap.kubernetes.io/token");
  secret["metadata"]["name"] = web::json::value::string("bootstrap-token-" + id);
  secret["metadata"]["namespace"] = web::json::value::string("kube-system");
  auto& data = secret["stringData"];
  data["token-id"] = web::json::value::string(id);
  data["token-secret"] = web::json::value::string(token.token.substr(dot + 1));
  data["expiration"] = web::json::value::string(controller::FormatTimestamp(
      std::chrono::time_point_cast<std::chrono::seconds>(token.expiration)));
  data["usage-bootstrap-authentication"] = web::json::value::string("true");
  data["usage-bootstrap-signing"] = web::json::value::string("true");
  data["auth-extra-groups"] =
      web::json::value::string("system:bootstrappers:kubeadm:default-node-token");
  data["description"] = web::json::value::string(token.description);
  return secret.serialize();
}

Result<KubernetesAccess> AccessFromKubeconfig(const std::string& kubeconfig) {
  try {
    const YAML::Node config = YAML::Load(kubeconfig);
    KubernetesAccess access;
    const YAML::Node cluster = config["clusters"][0]["cluster"];
    const YAML::Node user = config["users"][0]["user"];
    access.server = cluster["server"].as<std::string>();
    access.ca_pem = DecodeBase64(cluster["certificate-authority-data"].as<std::string>());
    access.client_cert_pem = DecodeBase64(user["client-certificate-data"].as<std::string>());
    access.client_key_pem = DecodeBase64(user["client-key-data"].as<std::string>());
    return access;
  } catch (const std::exception& e) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("kubeconfig without embedded cluster and user data: {}", e.what()));
  }
}

std::unique_ptr<KubernetesClient> MakeKubernetesClient(KubernetesAccess access) {
  return std::make_unique<HttpsKubernetesClient>(std::move(access));
}

}  // namespace vmlab::reconcilers::bootstrap
