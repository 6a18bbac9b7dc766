// One HTTPS request with a client certificate, the server verified against a
// given CA (and its name or address against its certificate), with a timeout:
// what the Kubernetes and etcd clients share. cpprestsdk stays in the .cc.
#pragma once

#include <chrono>
#include <string>

#include "crds/result.h"

namespace vmlab::reconcilers::bootstrap {

struct TlsClientIdentity {
  std::string ca_pem;           // the server must chain to it
  std::string client_cert_pem;  // presented to the server
  std::string client_key_pem;
  std::chrono::milliseconds timeout{5000};
};

struct HttpsResponse {
  int status = 0;
  std::string body;
};

// `base`: https://HOST:PORT; `path` with its query. kUnavailable when no
// answer came (refused, TLS failure, timeout): the message names the server.
[[nodiscard]] Result<HttpsResponse> HttpsRequest(const TlsClientIdentity& identity,
                                                 const std::string& base, const std::string& method,
                                                 const std::string& path,
                                                 const std::string& body = "",
                                                 const std::string& content_type = "");

// The server's own explanation: the "message" of a JSON error body (a
// Kubernetes Status, an etcd gateway error), else "HTTP <code>".
[[nodiscard]] std::string ResponseMessage(const HttpsResponse& response);

}  // namespace vmlab::reconcilers::bootstrap
