// X.509 material for a lab's Kubernetes cluster, made with OpenSSL: CAs,
// certificates they sign, the service-account key pair, the kubeadm
// discovery hash and bootstrap tokens. PEM in and out; RSA 2048 keys and
// SHA-256 signatures (what kubeadm makes itself).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "crds/result.h"

namespace vmlab::reconcilers::bootstrap {

struct CertAndKey {
  std::string cert_pem;
  std::string key_pem;  // PKCS#8 "PRIVATE KEY"
};

struct KeyPair {
  std::string private_pem;  // PKCS#8
  std::string public_pem;   // SubjectPublicKeyInfo "PUBLIC KEY"
};

// A self-signed CA (basicConstraints CA:TRUE critical; keyUsage keyCertSign,
// cRLSign, digitalSignature, keyEncipherment critical; subject key id).
[[nodiscard]] Result<CertAndKey> MakeCa(const std::string& common_name,
                                        std::chrono::hours validity);

struct CertRequest {
  std::string common_name;
  std::vector<std::string> organizations;  // O=, e.g. system:masters
  std::vector<std::string> dns_names;      // subjectAltName DNS:
  std::vector<std::string> ip_addresses;   // subjectAltName IP:
  bool client = false;                     // extendedKeyUsage clientAuth
  bool server = false;                     // extendedKeyUsage serverAuth
  std::chrono::hours validity{24 * 365};
};

// A leaf certificate for `request`, signed by `ca`, with a new key.
[[nodiscard]] Result<CertAndKey> IssueCert(const CertAndKey& ca, const CertRequest& request);

// A key pair (the service-account signing key).
[[nodiscard]] Result<KeyPair> MakeKeyPair();

// kubeadm's discovery token CA cert hash: "sha256:" + hex SHA-256 of the
// certificate's DER SubjectPublicKeyInfo.
[[nodiscard]] Result<std::string> DiscoveryHash(const std::string& ca_cert_pem);

// A bootstrap token "[a-z0-9]{6}.[a-z0-9]{16}" from OpenSSL's CSPRNG.
[[nodiscard]] Result<std::string> MakeBootstrapToken();

// `length` characters of [a-z0-9] from OpenSSL's CSPRNG.
[[nodiscard]] Result<std::string> RandomToken(std::size_t length);

// Base64 (no line breaks), for kubeconfig data fields.
[[nodiscard]] std::string Base64(const std::string& bytes);

}  // namespace vmlab::reconcilers::bootstrap
