#include "reconcilers/bootstrap/kubernetes_client.h"

#include <cpprest/http_client.h>
#include <cpprest/json.h>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio/ssl.hpp>

namespace vmlab::reconcilers::bootstrap {
namespace {

std::string DecodeBase64(const std::string& text) {
  const auto bytes = utility::conversions::from_base64(text);
  return std::string(bytes.begin(), bytes.end());
}

class HttpsKubernetesClient final : public KubernetesClient {
 public:
  explicit HttpsKubernetesClient(KubernetesAccess access) : access_(std::move(access)) {}

  Result<std::vector<KubeNode>> ListNodes() override {
    auto body = Get("/api/v1/nodes");
    if (!body) return std::unexpected(body.error());
    return ParseNodeList(*body);
  }

 private:
  Result<std::string> Get(const std::string& path) {
    web::http::client::http_client_config config;
    config.set_timeout(access_.timeout);
    config.set_validate_certificates(true);
    const KubernetesAccess& a = access_;
    config.set_ssl_context_callback([&a](boost::asio::ssl::context& context) {
      context.add_certificate_authority(boost::asio::buffer(a.ca_pem));
      context.use_certificate_chain(boost::asio::buffer(a.client_cert_pem));
      context.use_private_key(boost::asio::buffer(a.client_key_pem),
                              boost::asio::ssl::context::pem);
    });
    try {
      web::http::client::http_client client(web::uri(a.server), config);
      const web::http::http_response response = client.request(web::http::methods::GET, path).get();
      const std::string body = response.extract_utf8string(true).get();
      if (response.status_code() != web::http::status_codes::OK) {
        return MakeError(response.status_code() == 401 || response.status_code() == 403
                             ? ErrorCode::kPermissionDenied
                             : ErrorCode::kUnavailable,
                         fmt::format("Kubernetes API {} GET {}: HTTP {}", a.server, path,
                                     response.status_code()));
      }
      return body;
    } catch (const std::exception& e) {
      return MakeError(ErrorCode::kUnavailable,
                       fmt::format("Kubernetes API {} GET {}: {}", a.server, path, e.what()));
    }
  }

  const KubernetesAccess access_;
};

}  // namespace

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
