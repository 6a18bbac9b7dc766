// A lab's bootstrap secrets, made once and kept in the state dir:
// <state-dir>/pki/<lab>/ (0700) with ca.crt/key, front-proxy-ca.crt/key,
// etcd-ca.crt/key, sa.key/pub, admin.conf (the admin kubeconfig) and
// bootstrap.yaml (token, its creation time and TTL, the keepalived
// password and virtual router id, the key of the nodes' progress tokens),
// every file 0600. Created in a temporary
// folder and renamed into place, so a lab has all of them or none. Never
// regenerated behind the user's back: an incomplete folder is an error that
// says what is missing. Nothing here is logged or served by the API.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "crds/labcluster_types.h"
#include "crds/result.h"
#include "reconcilers/bootstrap/pki.h"

namespace vmlab::reconcilers::bootstrap {

inline constexpr std::chrono::hours kBootstrapTokenTtl{24};

struct LabSecrets {
  CertAndKey ca;
  CertAndKey front_proxy_ca;
  CertAndKey etcd_ca;
  KeyPair service_account;
  std::string token;  // [a-z0-9]{6}.[a-z0-9]{16}
  std::chrono::system_clock::time_point token_created;
  std::chrono::seconds token_ttl{0};
  std::string discovery_hash;  // sha256:<hex> of the CA's public key
  std::string vrrp_password;   // keepalived auth_pass: 8 characters (VRRP's limit)
  int vrrp_router_id = 0;      // 1..255
  std::string progress_key;    // HMAC key of the nodes' progress tokens (NodeToken)
  std::string admin_kubeconfig;
};

class SecretStore {
 public:
  explicit SecretStore(std::filesystem::path state_dir);

  // The lab's secrets, made on first use, read from disk once and then kept
  // in memory (every reconcile asks). `now` stamps the token. Thread-safe.
  // `trusted_ca` is the discovery hash of the CA the lab's nodes were given
  // (empty for a new lab): secrets that are gone or carry another CA are an
  // error then, never made anew (the nodes would not trust them). `existing`:
  // the lab has had nodes (a status from before the CA was recorded), so
  // missing secrets are an error too.
  [[nodiscard]] Result<LabSecrets> LoadOrCreate(const crds::LabCluster& lab,
                                                std::chrono::system_clock::time_point now,
                                                const std::string& trusted_ca = "",
                                                bool existing = false);
  // The lab's secrets if it has any (nullopt when there is no folder).
  [[nodiscard]] Result<std::optional<LabSecrets>> Load(const std::string& lab) const;
  // Replaces the lab's bootstrap token (already created in its cluster), its
  // creation time `now` and TTL, on disk (atomically) and in memory.
  [[nodiscard]] Result<LabSecrets> RotateToken(const std::string& lab, const std::string& token,
                                               std::chrono::system_clock::time_point now);
  // Removes the lab's folder (its lab is gone).
  [[nodiscard]] Status Remove(const std::string& lab);

  [[nodiscard]] std::filesystem::path Dir(const std::string& lab) const;
  [[nodiscard]] std::filesystem::path KubeconfigPath(const std::string& lab) const;

 private:
  [[nodiscard]] Result<LabSecrets> Create(const crds::LabCluster& lab,
                                          std::chrono::system_clock::time_point now) const;
  const std::filesystem::path root_;
  std::mutex mutex_;
  std::map<std::string, LabSecrets> cache_;  // lab -> its secrets, as on disk
};

// A new set of secrets for `lab`, in memory only (SecretStore keeps them).
[[nodiscard]] Result<LabSecrets> MakeLabSecrets(const crds::LabCluster& lab,
                                                std::chrono::system_clock::time_point now);

// The admin kubeconfig for `lab` (cluster CA, server https://VIP:port,
// client certificate CN kubernetes-admin O system:masters signed by the CA).
[[nodiscard]] Result<std::string> MakeAdminKubeconfig(const crds::LabCluster& lab,
                                                      const CertAndKey& ca);

}  // namespace vmlab::reconcilers::bootstrap
