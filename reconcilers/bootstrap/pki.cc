#include "reconcilers/bootstrap/pki.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace vmlab::reconcilers::bootstrap {
namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using Pkey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using Bignum = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using Extension = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;

// The OpenSSL error queue as one line, emptied.
Error OpenSslError(const char* what) {
  std::string detail;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(e, buffer, sizeof buffer);
    if (!detail.empty()) detail += "; ";
    detail += buffer;
  }
  return Error{ErrorCode::kInternal,
               fmt::format("openssl: {}{}", what, detail.empty() ? "" : ": " + detail)};
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

Result<Pkey> NewRsaKey() {
  Pkey key(EVP_RSA_gen(2048));
  if (!key) return std::unexpected(OpenSslError("generate an RSA key"));
  return key;
}

Result<std::string> PrivatePem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return std::unexpected(OpenSslError("write a private key"));
  return BioText(bio.get());
}

Result<std::string> CertPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1)
    return std::unexpected(OpenSslError("write a certificate"));
  return BioText(bio.get());
}

Result<Cert> ReadCert(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Cert cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return std::unexpected(OpenSslError("read a certificate"));
  return cert;
}

Result<Pkey> ReadKey(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Pkey key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return std::unexpected(OpenSslError("read a private key"));
  return key;
}

Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Extension ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return std::unexpected(OpenSslError(fmt::format("add extension {}", OBJ_nid2sn(nid)).c_str()));
  }
  return {};
}

// A certificate skeleton: v3, random 159-bit serial, validity from an hour
// ago (clock skew between host and guests) for `validity`, subject, key.
Result<Cert> NewCert(EVP_PKEY* key, const std::string& common_name,
                     const std::vector<std::string>& organizations, std::chrono::hours validity) {
  Cert cert(X509_new());
  if (!cert) return std::unexpected(OpenSslError("new certificate"));
  X509_set_version(cert.get(), 2);
  Bignum serial(BN_new());
  if (!serial || BN_rand(serial.get(), 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get()))) {
    return std::unexpected(OpenSslError("serial number"));
  }
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()),
                  static_cast<long>(std::chrono::seconds(validity).count()));
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& o : organizations) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(o.c_str()), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  if (X509_set_pubkey(cert.get(), key) != 1) return std::unexpected(OpenSslError("set key"));
  return cert;
}

}  // namespace

Result<CertAndKey> MakeCa(const std::string& common_name, std::chrono::hours validity) {
  auto key = NewRsaKey();
  if (!key) return std::unexpected(key.error());
  auto cert = NewCert(key->get(), common_name, {}, validity);
  if (!cert) return std::unexpected(cert.error());
  X509_set_issuer_name(cert->get(), X509_get_subject_name(cert->get()));
  for (const auto& [nid, value] :
       {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
        std::pair{NID_key_usage, "critical,digitalSignature,keyEncipherment,keyCertSign,cRLSign"},
        std::pair{NID_subject_key_identifier, "hash"}}) {
    if (auto added = AddExtension(cert->get(), cert->get(), nid, value); !added)
      return std::unexpected(added.error());
  }
  if (X509_sign(cert->get(), key->get(), EVP_sha256()) <= 0)
    return std::unexpected(OpenSslError("sign the CA"));
  auto cert_pem = CertPem(cert->get());
  auto key_pem = PrivatePem(key->get());
  if (!cert_pem) return std::unexpected(cert_pem.error());
  if (!key_pem) return std::unexpected(key_pem.error());
  return CertAndKey{*cert_pem, *key_pem};
}

Result<CertAndKey> IssueCert(const CertAndKey& ca, const CertRequest& request) {
  auto ca_cert = ReadCert(ca.cert_pem);
  if (!ca_cert) return std::unexpected(ca_cert.error());
  auto ca_key = ReadKey(ca.key_pem);
  if (!ca_key) return std::unexpected(ca_key.error());
  auto key = NewRsaKey();
  if (!key) return std::unexpected(key.error());
  auto cert = NewCert(key->get(), request.common_name, request.organizations, request.validity);
  if (!cert) return std::unexpected(cert.error());
  X509_set_issuer_name(cert->get(), X509_get_subject_name(ca_cert->get()));

  std::vector<std::pair<int, std::string>> extensions = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
      {NID_authority_key_identifier, "keyid:always"},
  };
  std::string usages;
  if (request.server) usages = "serverAuth";
  if (request.client) usages += usages.empty() ? "clientAuth" : ",clientAuth";
  if (!usages.empty()) extensions.emplace_back(NID_ext_key_usage, usages);
  std::string sans;
  for (const auto& dns : request.dns_names) sans += (sans.empty() ? "DNS:" : ",DNS:") + dns;
  for (const auto& ip : request.ip_addresses) sans += (sans.empty() ? "IP:" : ",IP:") + ip;
  if (!sans.empty()) extensions.emplace_back(NID_subject_alt_name, sans);
  for (const auto& [nid, value] : extensions) {
    if (auto added = AddExtension(cert->get(), ca_cert->get(), nid, value); !added)
      return std::unexpected(added.error());
  }
  if (X509_sign(cert->get(), ca_key->get(), EVP_sha256()) <= 0)
    return std::unexpected(OpenSslError("sign a certificate"));
  auto cert_pem = CertPem(cert->get());
  auto key_pem = PrivatePem(key->get());
  if (!cert_pem) return std::unexpected(cert_pem.error());
  if (!key_pem) return std::unexpected(key_pem.error());
  return CertAndKey{*cert_pem, *key_pem};
}

Result<KeyPair> MakeKeyPair() {
  auto key = NewRsaKey();
  if (!key) return std::unexpected(key.error());
  auto private_pem = PrivatePem(key->get());
  if (!private_pem) return std::unexpected(private_pem.error());
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key->get()) != 1)
    return std::unexpected(OpenSslError("write a public key"));
  return KeyPair{*private_pem, BioText(bio.get())};
}

Result<std::string> DiscoveryHash(const std::string& ca_cert_pem) {
  auto cert = ReadCert(ca_cert_pem);
  if (!cert) return std::unexpected(cert.error());
  unsigned char* der = nullptr;
  const int length = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert->get()), &der);
  if (length <= 0) return std::unexpected(OpenSslError("encode the public key"));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  const int ok = EVP_Digest(der, static_cast<std::size_t>(length), digest, &digest_length,
                            EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (ok != 1) return std::unexpected(OpenSslError("hash the public key"));
  std::string hex = "sha256:";
  for (unsigned int i = 0; i < digest_length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

Result<std::string> RandomToken(std::size_t length) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  unsigned char buffer[64];
  while (out.size() < length) {
    if (RAND_bytes(buffer, sizeof buffer) != 1)
      return std::unexpected(OpenSslError("random bytes"));
    for (const unsigned char b : buffer) {
      if (b >= 252) continue;  // 252 = 7 * 36: keeps every character equally likely
      out += kAlphabet[b % 36];
      if (out.size() == length) break;
    }
  }
  return out;
}

Result<std::string> MakeBootstrapToken() {
  auto id = RandomToken(6);
  auto secret = RandomToken(16);
  if (!id) return std::unexpected(id.error());
  if (!secret) return std::unexpected(secret.error());
  return *id + "." + *secret;
}

std::string Base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace vmlab::reconcilers::bootstrap
