// The lab PKI, checked with the openssl command line: chains, SANs, key
// usages, validity, the kubeadm discovery hash; the secret store's files,
// modes and refusal to regenerate.
#include "reconcilers/bootstrap/pki.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "../controller/scratch_dir.h"
#include "crds/labcluster_parse.h"
#include "fixtures.h"
#include "reconcilers/bootstrap/lab_secrets.h"
#include "shell.h"

namespace vmlab::reconcilers::bootstrap {
namespace {

using testing::HasSubstr;
using testing::Not;
using testing_support::ScratchDir;
using testing_support::Shell;

crds::LabCluster Lab() {
  return testing_support::ParseLab(
      "lab.yaml",
      "apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata: {name: pki}\nspec:\n"
      "  kubernetes: {version: \"1.30.4\"}\n  network: {cidr: 172.42.42.0/24}\n"
      "  controlPlane: {replicas: 3, endpoint: {host: pkicluster, port: 16443}}\n");
}

std::string Base64Decode(const std::string& text) {
  ScratchDir dir;
  dir.Write("in", text);
  return Shell("base64 -d " + (dir.path() / "in").string());
}

int Mode(const std::filesystem::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<int>(st.st_mode & 07777);
}

TEST(PkiTest, CaIsACaAndSignsALeafThatOpensslVerifies) {
  const auto ca = MakeCa("kubernetes", std::chrono::hours(24 * 3650));
  ASSERT_TRUE(ca) << ca.error().message;
  CertRequest request;
  request.common_name = "kube-apiserver";
  request.dns_names = {"pkicluster", "pkicluster.lab.local"};
  request.ip_addresses = {"172.42.42.10"};
  request.server = true;
  const auto leaf = IssueCert(*ca, request);
  ASSERT_TRUE(leaf) << leaf.error().message;

  ScratchDir dir;
  dir.Write("ca.crt", ca->cert_pem);
  dir.Write("leaf.crt", leaf->cert_pem);
  dir.Write("leaf.key", leaf->key_pem);
  const std::string d = dir.path().string();
  EXPECT_THAT(Shell("openssl verify -CAfile " + d + "/ca.crt " + d + "/leaf.crt"),
              HasSubstr(": OK"));
  const std::string ca_text = Shell("openssl x509 -noout -text -in " + d + "/ca.crt");
  EXPECT_THAT(ca_text, HasSubstr("CA:TRUE"));
  EXPECT_THAT(ca_text, HasSubstr("Certificate Sign, CRL Sign"));
  EXPECT_THAT(ca_text, HasSubstr("Subject: CN = kubernetes"));
  const std::string text = Shell("openssl x509 -noout -text -in " + d + "/leaf.crt");
  EXPECT_THAT(text, HasSubstr("CA:FALSE"));
  EXPECT_THAT(text, HasSubstr("TLS Web Server Authentication"));
  EXPECT_THAT(text, Not(HasSubstr("TLS Web Client Authentication")));
  EXPECT_THAT(text, HasSubstr("DNS:pkicluster, DNS:pkicluster.lab.local, IP Address:172.42.42.10"));
  EXPECT_THAT(text, HasSubstr("sha256WithRSAEncryption"));
  EXPECT_THAT(text, HasSubstr("Public-Key: (2048 bit)"));
  // The key belongs to the certificate.
  EXPECT_EQ(Shell("openssl x509 -noout -pubkey -in " + d + "/leaf.crt"),
            Shell("openssl pkey -pubout -in " + d + "/leaf.key"));
  // Valid now, and for the CA about ten years.
  EXPECT_THAT(Shell("openssl x509 -noout -checkend 0 -in " + d + "/leaf.crt"),
              HasSubstr("will not expire"));
  int status = 0;
  Shell("openssl x509 -noout -checkend " + std::to_string(11L * 365 * 86400) + " -in " + d +
            "/ca.crt",
        &status);
  EXPECT_NE(status, 0) << "the CA expires within 11 years";
  EXPECT_THAT(Shell("openssl x509 -noout -checkend " + std::to_string(9L * 365 * 86400) + " -in " +
                    d + "/ca.crt"),
              HasSubstr("will not expire"));
}

TEST(PkiTest, ACertificateFromAnotherCaDoesNotVerify) {
  const auto ca = MakeCa("kubernetes", std::chrono::hours(24));
  const auto other = MakeCa("kubernetes", std::chrono::hours(24));
  ASSERT_TRUE(ca && other);
  CertRequest request;
  request.common_name = "x";
  request.client = true;
  const auto leaf = IssueCert(*other, request);
  ASSERT_TRUE(leaf);
  ScratchDir dir;
  dir.Write("ca.crt", ca->cert_pem);
  dir.Write("leaf.crt", leaf->cert_pem);
  int status = 0;
  Shell("openssl verify -CAfile " + (dir.path() / "ca.crt").string() + " " +
            (dir.path() / "leaf.crt").string() + " 2>&1",
        &status);
  EXPECT_NE(status, 0);
}

TEST(PkiTest, DiscoveryHashMatchesTheOpensslCommandLine) {
  const auto ca = MakeCa("kubernetes", std::chrono::hours(24));
  ASSERT_TRUE(ca);
  const auto hash = DiscoveryHash(ca->cert_pem);
  ASSERT_TRUE(hash) << hash.error().message;
  ScratchDir dir;
  dir.Write("ca.crt", ca->cert_pem);
  // kubeadm's documented recipe for --discovery-token-ca-cert-hash.
  const std::string expected =
      Shell("openssl x509 -pubkey -in " + (dir.path() / "ca.crt").string() +
            " | openssl rsa -pubin -outform der 2>/dev/null | openssl dgst -sha256 -hex | sed "
            "'s/^.* //'");
  EXPECT_EQ(*hash, "sha256:" + expected.substr(0, expected.find('\n')));
  EXPECT_FALSE(DiscoveryHash("not a certificate"));
}

TEST(PkiTest, BootstrapTokensHaveKubeadmsFormatAndDiffer) {
  const std::regex format("[a-z0-9]{6}\\.[a-z0-9]{16}");
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    const auto token = MakeBootstrapToken();
    ASSERT_TRUE(token);
    EXPECT_TRUE(std::regex_match(*token, format)) << *token;
    seen.insert(*token);
  }
  EXPECT_EQ(seen.size(), 50u);
}

TEST(PkiTest, SecretStoreMakesEverythingOnceWithPrivateModes) {
  ScratchDir state;
  SecretStore store(state.path());
  const auto lab = Lab();
  const auto now = std::chrono::system_clock::now();
  const auto made = store.LoadOrCreate(lab, now);
  ASSERT_TRUE(made) << made.error().message;
  const auto dir = store.Dir("pki");
  EXPECT_EQ(Mode(dir), 0700);
  EXPECT_EQ(Mode(state.path() / "pki"), 0700);
  for (const char* file :
       {"ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd-ca.crt",
        "etcd-ca.key", "sa.key", "sa.pub", "admin.conf", "bootstrap.yaml"}) {
    EXPECT_EQ(Mode(dir / file), 0600) << file;
  }
  EXPECT_EQ(made->token_ttl, std::chrono::hours(24));
  EXPECT_GE(made->vrrp_router_id, 1);
  EXPECT_LE(made->vrrp_router_id, 255);
  EXPECT_EQ(made->vrrp_password.size(), 8u);

  // Loaded again, not remade.
  const auto again = store.LoadOrCreate(lab, now + std::chrono::hours(1));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->ca.cert_pem, made->ca.cert_pem);
  EXPECT_EQ(again->token, made->token);
  EXPECT_EQ(again->discovery_hash, made->discovery_hash);
  EXPECT_EQ(again->vrrp_router_id, made->vrrp_router_id);
  EXPECT_EQ(std::chrono::time_point_cast<std::chrono::seconds>(again->token_created),
            std::chrono::time_point_cast<std::chrono::seconds>(made->token_created));

  // Every CA verifies itself; the service-account pair matches.
  const std::string d = dir.string();
  for (const char* ca : {"ca", "front-proxy-ca", "etcd-ca"}) {
    EXPECT_THAT(Shell(fmt::format("openssl verify -CAfile {0}/{1}.crt {0}/{1}.crt", d, ca)),
                HasSubstr(": OK"));
  }
  EXPECT_EQ(Shell("openssl pkey -pubout -in " + d + "/sa.key"), made->service_account.public_pem);

  // An incomplete folder is an error that says what is missing, never a new
  // CA. A running store keeps what it read; a restarted one finds the gap.
  std::filesystem::remove(dir / "etcd-ca.key");
  const auto cached = store.LoadOrCreate(lab, now);
  ASSERT_TRUE(cached);
  EXPECT_EQ(cached->etcd_ca.key_pem, made->etcd_ca.key_pem) << "read once, then kept";
  SecretStore restarted(state.path());
  const auto broken = restarted.LoadOrCreate(lab, now);
  ASSERT_FALSE(broken);
  EXPECT_THAT(broken.error().message, HasSubstr("missing etcd-ca.key"));
  EXPECT_TRUE(std::filesystem::exists(dir / "ca.crt")) << "nothing was replaced";
  ASSERT_TRUE(store.Remove("pki"));
  EXPECT_FALSE(std::filesystem::exists(dir));
  ASSERT_TRUE(store.LoadOrCreate(lab, now)) << "a removed folder starts afresh";
}

TEST(PkiTest, AdminKubeconfigChainsToTheCaAndPointsAtTheEndpoint) {
  ScratchDir state;
  SecretStore store(state.path());
  const auto secrets = store.LoadOrCreate(Lab(), std::chrono::system_clock::now());
  ASSERT_TRUE(secrets);
  const YAML::Node config = YAML::LoadFile(store.KubeconfigPath("pki").string());
  EXPECT_EQ(config["clusters"][0]["cluster"]["server"].as<std::string>(),
            "https://172.42.42.10:16443");
  EXPECT_EQ(Base64Decode(
                config["clusters"][0]["cluster"]["certificate-authority-data"].as<std::string>()),
            secrets->ca.cert_pem);
  const std::string client =
      Base64Decode(config["users"][0]["user"]["client-certificate-data"].as<std::string>());
  ScratchDir dir;
  dir.Write("ca.crt", secrets->ca.cert_pem);
  dir.Write("admin.crt", client);
  const std::string d = dir.path().string();
  EXPECT_THAT(Shell("openssl verify -CAfile " + d + "/ca.crt " + d + "/admin.crt"),
              HasSubstr(": OK"));
  const std::string text =
      Shell("openssl x509 -noout -subject -ext extendedKeyUsage -in " + d + "/admin.crt");
  EXPECT_THAT(text, HasSubstr("O = system:masters, CN = kubernetes-admin"));
  EXPECT_THAT(text, HasSubstr("TLS Web Client Authentication"));
  EXPECT_EQ(config["current-context"].as<std::string>(), "kubernetes-admin@pki");
}

}  // namespace
}  // namespace vmlab::reconcilers::bootstrap
