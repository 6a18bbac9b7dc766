#include "reconcilers/bootstrap/https_request.h"

#include <cpprest/http_client.h>
#include <cpprest/json.h>
#include <fmt/format.h>

#include <boost/asio/ssl.hpp>

namespace vmlab::reconcilers::bootstrap {

Result<HttpsResponse> HttpsRequest(const TlsClientIdentity& identity, const std::string& base,
                                   const std::string& method, const std::string& path,
                                   const std::string& body, const std::string& content_type) {
  web::http::client::http_client_config config;
  config.set_timeout(identity.timeout);
  config.set_validate_certificates(true);
  config.set_ssl_context_callback([&identity](boost::asio::ssl::context& context) {
    context.add_certificate_authority(boost::asio::buffer(identity.ca_pem));
    context.use_certificate_chain(boost::asio::buffer(identity.client_cert_pem));
    context.use_private_key(boost::asio::buffer(identity.client_key_pem),
                            boost::asio::ssl::context::pem);
  });
  try {
    web::http::client::http_client client(web::uri(base), config);
    web::http::http_request request(method);
    request.set_request_uri(path);
    request.headers().add(web::http::header_names::accept, "application/json");
    if (!content_type.empty()) request.set_body(body, content_type);
    const web::http::http_response response = client.request(request).get();
    return HttpsResponse{response.status_code(), response.extract_utf8string(true).get()};
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("{} {} {}: {}", base, method, path, e.what()));
  }
}

std::string ResponseMessage(const HttpsResponse& response) {
  try {
    const auto error = web::json::value::parse(response.body);
    if (error.has_string_field("message")) return error.at("message").as_string();
  } catch (const std::exception&) {
  }
  return fmt::format("HTTP {}", response.status);
}

}  // namespace vmlab::reconcilers::bootstrap
