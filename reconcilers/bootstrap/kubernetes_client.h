// The Kubernetes API of a lab, read by the controller through the lab's
// endpoint with the admin client certificate, the server verified against
// the lab's CA (and its name or address against the certificate), with a
// timeout. cpprestsdk and Boost.Asio stay in the .cc. An unreachable API is
// an error (kUnavailable), never a crash.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "crds/result.h"

namespace vmlab::reconcilers::bootstrap {

struct KubeNode {
  std::string name;
  bool ready = false;          // condition Ready is True
  bool unschedulable = false;  // cordoned
};

class KubernetesClient {
 public:
  virtual ~KubernetesClient() = default;
  [[nodiscard]] virtual Result<std::vector<KubeNode>> ListNodes() = 0;
};

struct KubernetesAccess {
  std::string server;  // https://HOST:PORT
  std::string ca_pem;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::chrono::milliseconds timeout{5000};
};

// Access from a kubeconfig (the first cluster and user, with embedded *-data).
[[nodiscard]] Result<KubernetesAccess> AccessFromKubeconfig(const std::string& kubeconfig);

[[nodiscard]] std::unique_ptr<KubernetesClient> MakeKubernetesClient(KubernetesAccess access);

// The nodes of a NodeList JSON document.
[[nodiscard]] Result<std::vector<KubeNode>> ParseNodeList(const std::string& json);

}  // namespace vmlab::reconcilers::bootstrap
