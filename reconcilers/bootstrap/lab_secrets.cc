#include "reconcilers/bootstrap/lab_secrets.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <fstream>
#include <sstream>

#include "controller/status_store.h"
#include "reconcilers/infrastructure/identity.h"

namespace vmlab::reconcilers::bootstrap {
namespace fs = std::filesystem;
namespace {

constexpr std::chrono::hours kCaValidity{24 * 365 * 10};
constexpr std::chrono::hours kAdminValidity{24 * 365};

// The files of a complete folder, in the order they are written.
constexpr std::array kFiles = {
    "ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd-ca.crt", "etcd-ca.key",
    "sa.key", "sa.pub", "admin.conf",         "bootstrap.yaml"};

Error Failed(ErrorCode code, std::string message) { return Error{code, std::move(message)}; }

Result<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return std::unexpected(
        Failed(ErrorCode::kUnavailable, fmt::format("cannot read {}", path.string())));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The files holding `s`'s certificates, keys and kubeconfig, and where each goes.
std::array<std::pair<const char*, std::string*>, 9> PemFiles(LabSecrets& s) {
  return {{
      {"ca.crt", &s.ca.cert_pem},
      {"ca.key", &s.ca.key_pem},
      {"front-proxy-ca.crt", &s.front_proxy_ca.cert_pem},
      {"front-proxy-ca.key", &s.front_proxy_ca.key_pem},
      {"etcd-ca.crt", &s.etcd_ca.cert_pem},
      {"etcd-ca.key", &s.etcd_ca.key_pem},
      {"sa.key", &s.service_account.private_pem},
      {"sa.pub", &s.service_account.public_pem},
      {"admin.conf", &s.admin_kubeconfig},
  }};
}

template <typename T>
Result<T> Fail(const Error& e) {
  return std::unexpected(e);
}

}  // namespace

SecretStore::SecretStore(fs::path state_dir) : root_(std::move(state_dir) / "pki") {}

fs::path SecretStore::Dir(const std::string& lab) const { return root_ / lab; }

fs::path SecretStore::KubeconfigPath(const std::string& lab) const {
  return Dir(lab) / "admin.conf";
}

Result<std::string> MakeAdminKubeconfig(const crds::LabCluster& lab, const CertAndKey& ca) {
  CertRequest request;
  request.common_name = "kubernetes-admin";
  request.organizations = {"system:masters"};
  request.client = true;
  request.validity = kAdminValidity;
  auto admin = IssueCert(ca, request);
  if (!admin) return std::unexpected(admin.error());
  const std::string& name = lab.metadata.name;
  const std::string user = "kubernetes-admin";
  const std::string context = user + "@" + name;
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "apiVersion" << YAML::Value << "v1";
  out << YAML::Key << "kind" << YAML::Value << "Config";
  out << YAML::Key << "clusters" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << name;
  out << YAML::Key << "cluster" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "certificate-authority-data" << YAML::Value << Base64(ca.cert_pem);
  // The VIP: the host reaches it over the lab bridge without the lab's DNS.
  out << YAML::Key << "server" << YAML::Value
      << fmt::format("https://{}:{}", lab.spec.control_plane.endpoint.vip.ToString(),
                     lab.spec.control_plane.endpoint.port);
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
  out << YAML::Key << "contexts" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << context;
  out << YAML::Key << "context" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "cluster" << YAML::Value << name;
  out << YAML::Key << "user" << YAML::Value << user;
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
  out << YAML::Key << "current-context" << YAML::Value << context;
  out << YAML::Key << "preferences" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::EndMap;
  out << YAML::Key << "users" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << user;
  out << YAML::Key << "user" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "client-certificate-data" << YAML::Value << Base64(admin->cert_pem);
  out << YAML::Key << "client-key-data" << YAML::Value << Base64(admin->key_pem);
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

Result<LabSecrets> MakeLabSecrets(const crds::LabCluster& lab,
                                  std::chrono::system_clock::time_point now) {
  LabSecrets s;
  auto ca = MakeCa("kubernetes", kCaValidity);
  if (!ca) return Fail<LabSecrets>(ca.error());
  s.ca = std::move(*ca);
  auto front_proxy = MakeCa("front-proxy-ca", kCaValidity);
  if (!front_proxy) return Fail<LabSecrets>(front_proxy.error());
  s.front_proxy_ca = std::move(*front_proxy);
  auto etcd = MakeCa("etcd-ca", kCaValidity);
  if (!etcd) return Fail<LabSecrets>(etcd.error());
  s.etcd_ca = std::move(*etcd);
  auto sa = MakeKeyPair();
  if (!sa) return Fail<LabSecrets>(sa.error());
  s.service_account = std::move(*sa);
  auto token = MakeBootstrapToken();
  if (!token) return Fail<LabSecrets>(token.error());
  s.token = *token;
  s.token_created = std::chrono::time_point_cast<std::chrono::seconds>(now);
  s.token_ttl = kBootstrapTokenTtl;
  auto password = RandomToken(8);
  if (!password) return Fail<LabSecrets>(password.error());
  s.vrrp_password = *password;
  auto id = RandomToken(2);
  if (!id) return Fail<LabSecrets>(id.error());
  s.vrrp_router_id =
      1 + (static_cast<unsigned char>((*id)[0]) * 36 + static_cast<unsigned char>((*id)[1])) % 255;
  auto progress_key = RandomToken(32);
  if (!progress_key) return Fail<LabSecrets>(progress_key.error());
  s.progress_key = *progress_key;
  auto hash = DiscoveryHash(s.ca.cert_pem);
  if (!hash) return Fail<LabSecrets>(hash.error());
  s.discovery_hash = *hash;
  auto kubeconfig = MakeAdminKubeconfig(lab, s.ca);
  if (!kubeconfig) return Fail<LabSecrets>(kubeconfig.error());
  s.admin_kubeconfig = *kubeconfig;
  return s;
}

// bootstrap.yaml: everything that is not a key or certificate.
std::string BootstrapYaml(const std::string& name, const LabSecrets& s) {
  YAML::Emitter meta;
  meta << YAML::BeginMap;
  meta << YAML::Key << "lab" << YAML::Value << name;
  meta << YAML::Key << "token" << YAML::Value << s.token;
  meta << YAML::Key << "tokenCreated" << YAML::Value
       << controller::FormatTimestamp(s.token_created);
  meta << YAML::Key << "tokenTTLSeconds" << YAML::Value << s.token_ttl.count();
  meta << YAML::Key << "vrrpPassword" << YAML::Value << s.vrrp_password;
  meta << YAML::Key << "vrrpRouterId" << YAML::Value << s.vrrp_router_id;
  meta << YAML::Key << "progressKey" << YAML::Value << s.progress_key;
  meta << YAML::EndMap;
  return std::string(meta.c_str()) + "\n";
}

Result<LabSecrets> SecretStore::Create(const crds::LabCluster& lab,
                                       std::chrono::system_clock::time_point now) const {
  const std::string& name = lab.metadata.name;
  auto made = MakeLabSecrets(lab, now);
  if (!made) return std::unexpected(made.error());
  LabSecrets& s = *made;

  // Written into a fresh 0700 folder beside the final one, then renamed.
  std::error_code ec;
  fs::create_directories(root_, ec);
  ::chmod(root_.c_str(), 0700);
  const fs::path temp = root_ / fmt::format(".{}.new.{}", name, getpid());
  fs::remove_all(temp, ec);
  if (!fs::create_directory(temp, ec) || ::chmod(temp.c_str(), 0700) != 0) {
    return std::unexpected(Failed(
        ErrorCode::kUnavailable,
        fmt::format("cannot create {}: {}", temp.string(), ec ? ec.message() : "chmod failed")));
  }
  const std::string meta_text = BootstrapYaml(name, s);
  for (const auto& [file, content] : PemFiles(s)) {
    if (auto written = controller::WriteFileAtomically(temp / file, *content); !written) {
      fs::remove_all(temp, ec);
      return std::unexpected(written.error());
    }
  }
  if (auto written = controller::WriteFileAtomically(temp / "bootstrap.yaml", meta_text);
      !written) {
    fs::remove_all(temp, ec);
    return std::unexpected(written.error());
  }
  fs::rename(temp, Dir(name), ec);
  if (ec) {
    fs::remove_all(temp, ec);
    return std::unexpected(
        Failed(ErrorCode::kUnavailable,
               fmt::format("cannot create {}: {}", Dir(name).string(), ec.message())));
  }
  return std::move(s);
}

Result<std::optional<LabSecrets>> SecretStore::Load(const std::string& lab) const {
  const fs::path dir = Dir(lab);
  std::error_code ec;
  if (!fs::exists(dir, ec)) return std::optional<LabSecrets>{};
  std::vector<std::string> missing;
  for (const char* file : kFiles) {
    if (!fs::exists(dir / file, ec)) missing.push_back(file);
  }
  if (!missing.empty()) {
    return std::unexpected(Failed(
        ErrorCode::kFailedPrecondition,
        fmt::format("the lab's secrets in {} are incomplete (missing {}); vmlab does not make new "
                    "ones while nodes may trust the old CA: restore the files from a backup of the "
                    "state dir, or delete the lab (remove its manifest) and create it anew",
                    dir.string(), fmt::join(missing, ", "))));
  }
  LabSecrets s;
  for (const auto& [file, target] : PemFiles(s)) {
    auto text = ReadFile(dir / file);
    if (!text) return std::unexpected(text.error());
    *target = std::move(*text);
  }
  auto meta_text = ReadFile(dir / "bootstrap.yaml");
  if (!meta_text) return std::unexpected(meta_text.error());
  try {
    const YAML::Node meta = YAML::Load(*meta_text);
    s.token = meta["token"].as<std::string>();
    const auto created = controller::ParseTimestamp(meta["tokenCreated"].as<std::string>());
    if (!created) throw YAML::Exception(YAML::Mark::null_mark(), "bad tokenCreated");
    s.token_created = *created;
    s.token_ttl = std::chrono::seconds(meta["tokenTTLSeconds"].as<long>());
    s.vrrp_password = meta["vrrpPassword"].as<std::string>();
    s.vrrp_router_id = meta["vrrpRouterId"].as<int>();
    s.progress_key = meta["progressKey"].as<std::string>();
  } catch (const YAML::Exception& e) {
    return std::unexpected(Failed(ErrorCode::kFailedPrecondition,
                                  fmt::format("{} is damaged ({}); restore it from a backup",
                                              (dir / "bootstrap.yaml").string(), e.what())));
  }
  auto hash = DiscoveryHash(s.ca.cert_pem);
  if (!hash) {
    return std::unexpected(Failed(ErrorCode::kFailedPrecondition,
                                  fmt::format("{} is not a readable certificate: {}",
                                              (dir / "ca.crt").string(), hash.error().message)));
  }
  s.discovery_hash = *hash;
  return std::optional<LabSecrets>(std::move(s));
}

Result<LabSecrets> SecretStore::LoadOrCreate(const crds::LabCluster& lab,
                                             std::chrono::system_clock::time_point now,
                                             const std::string& trusted_ca, bool existing) {
  const std::string& name = lab.metadata.name;
  const auto other_ca = [&](const LabSecrets& s) -> Result<LabSecrets> {
    if (trusted_ca.empty() || s.discovery_hash == trusted_ca) return s;
    return std::unexpected(Failed(
        ErrorCode::kFailedPrecondition,
        fmt::format("lab {}'s secrets in {} carry another CA ({}) than the one its nodes trust "
                    "({}): put the lab's own folder back from a backup of the state dir, or "
                    "delete the lab (remove its manifest) and create it anew",
                    name, Dir(name).string(), s.discovery_hash, trusted_ca)));
  };
  {
    std::lock_guard guard(mutex_);
    if (auto it = cache_.find(name); it != cache_.end()) return other_ca(it->second);
  }
  auto loaded = Load(name);
  if (!loaded) return std::unexpected(loaded.error());
  if (!*loaded && (!trusted_ca.empty() || existing)) {
    return std::unexpected(Failed(
        ErrorCode::kFailedPrecondition,
        fmt::format("lab {}'s secrets are gone from {}, and its nodes trust {}: new ones "
                    "would lock them out, so none are made. Put the folder back from a backup "
                    "of the state dir, or delete the lab (remove its manifest) and create it "
                    "anew",
                    name, Dir(name).string(),
                    trusted_ca.empty() ? std::string("the old CA") : "the CA " + trusted_ca)));
  }
  if (*loaded) {
    if (auto same = other_ca(**loaded); !same) return same;
  }
  auto secrets = *loaded ? Result<LabSecrets>(std::move(**loaded)) : Create(lab, now);
  if (secrets) {
    std::lock_guard guard(mutex_);
    cache_.insert_or_assign(name, *secrets);
  }
  return secrets;
}

Result<LabSecrets> SecretStore::RotateToken(const std::string& lab, const std::string& token,
                                            std::chrono::system_clock::time_point now) {
  std::lock_guard guard(mutex_);
  std::optional<LabSecrets> current;
  if (auto it = cache_.find(lab); it != cache_.end()) current = it->second;
  if (!current) {
    auto loaded = Load(lab);
    if (!loaded) return std::unexpected(loaded.error());
    if (!*loaded) {
      return std::unexpected(
          Failed(ErrorCode::kNotFound, fmt::format("lab {} has no secrets to rotate", lab)));
    }
    current = std::move(**loaded);
  }
  LabSecrets rotated = *current;
  rotated.token = token;
  rotated.token_created = std::chrono::time_point_cast<std::chrono::seconds>(now);
  rotated.token_ttl = kBootstrapTokenTtl;
  if (auto written =
          controller::WriteFileAtomically(Dir(lab) / "bootstrap.yaml", BootstrapYaml(lab, rotated));
      !written) {
    return std::unexpected(written.error());
  }
  cache_.insert_or_assign(lab, rotated);
  return rotated;
}

Status SecretStore::Remove(const std::string& lab) {
  {
    std::lock_guard guard(mutex_);
    cache_.erase(lab);
  }
  std::error_code ec;
  fs::remove_all(Dir(lab), ec);
  if (ec) {
    return std::unexpected(
        Failed(ErrorCode::kUnavailable,
               fmt::format("cannot remove {}: {}", Dir(lab).string(), ec.message())));
  }
  return {};
}

}  // namespace vmlab::reconcilers::bootstrap
