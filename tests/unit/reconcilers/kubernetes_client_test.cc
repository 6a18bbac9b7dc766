// The Kubernetes API client against a local HTTPS stand-in
// (tests/fixtures/k8s/api_stand_in.py, a test fixture, not Kubernetes) that
// requires client certificates from the lab's CA: readiness parsing, server
// and client verification failures, hostname checks, timeouts, kubeconfig,
// the drain calls (cordon, pods, evictions blocked by a PodDisruptionBudget,
// Node deletion) and bootstrap token Secrets.
#include "reconcilers/bootstrap/kubernetes_client.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <thread>

#include "../controller/scratch_dir.h"
#include "fixtures.h"
#include "reconcilers/bootstrap/lab_secrets.h"
#include "reconcilers/bootstrap/pki.h"

namespace vmlab::reconcilers::bootstrap {
namespace {

using testing::HasSubstr;
using testing_support::ScratchDir;

// The stand-in API server, started for one test and ended by its PID.
class StandIn {
 public:
  StandIn(const ScratchDir& dir, const CertAndKey& ca, const CertAndKey& server, bool slow = false,
          bool policy_v1beta1_only = false) {
    dir.Write("ca.crt", ca.cert_pem);
    dir.Write("server.crt", server.cert_pem);
    dir.Write("server.key", server.key_pem);
    const std::string d = dir.path().string();
    const std::string command = fmt::format(
        "python3 {}/tests/fixtures/k8s/api_stand_in.py {d}/port {d}/ca.crt {d}/server.crt "
        "{d}/server.key {} {} >{d}/server.log 2>&1 & echo $! >{d}/pid",
        testing_support::kSourceDir.string(), slow ? "slow" : "",
        policy_v1beta1_only ? "policy-v1beta1" : "", fmt::arg("d", d));
    EXPECT_EQ(std::system(command.c_str()), 0);
    pid_ = std::stoi(testing_support::ReadFile(dir.path() / "pid"));
    for (int i = 0; i < 200 && !std::filesystem::exists(dir.path() / "port"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    port_ = std::stoi(testing_support::ReadFile(dir.path() / "port"));
  }
  ~StandIn() { kill(pid_, SIGTERM); }
  // The requests the stand-in received, one JSON document per line.
  [[nodiscard]] static std::string Requests(const ScratchDir& dir) {
    return testing_support::ReadFile(dir.path() / "port.requests");
  }
  [[nodiscard]] std::string url() const { return fmt::format("https://127.0.0.1:{}", port_); }

 private:
  int pid_ = 0;
  int port_ = 0;
};

struct Pki {
  CertAndKey ca = *MakeCa("kubernetes", std::chrono::hours(24));
  CertAndKey server = Issue(ca, "kube-apiserver", {"127.0.0.1"}, true);
  CertAndKey admin = Issue(ca, "kubernetes-admin", {}, false);

  static CertAndKey Issue(const CertAndKey& ca, const std::string& cn, std::vector<std::string> ips,
                          bool server) {
    CertRequest request;
    request.common_name = cn;
    request.ip_addresses = std::move(ips);
    request.server = server;
    request.client = !server;
    if (!server) request.organizations = {"system:masters"};
    return *IssueCert(ca, request);
  }
  KubernetesAccess Access(const std::string& url) const {
    return {url, ca.cert_pem, admin.cert_pem, admin.key_pem, std::chrono::milliseconds(3000)};
  }
};

TEST(KubernetesClientTest, ReadsNodeReadinessOverVerifiedTls) {
  ScratchDir dir;
  const Pki pki;
  StandIn api(dir, pki.ca, pki.server);
  const auto nodes = MakeKubernetesClient(pki.Access(api.url()))->ListNodes();
  ASSERT_TRUE(nodes) << nodes.error().message;
  ASSERT_EQ(nodes->size(), 3u);
  EXPECT_EQ((*nodes)[0].name, "lab-cp-1");
  EXPECT_TRUE((*nodes)[0].ready);
  EXPECT_FALSE((*nodes)[1].ready);
  EXPECT_TRUE((*nodes)[1].unschedulable);
  EXPECT_FALSE((*nodes)[2].ready) << "no Ready condition is not ready";
}

TEST(KubernetesClientTest, AServerFromAnotherCaIsRefused) {
  ScratchDir dir;
  const Pki pki;
  const Pki other;
  StandIn api(dir, other.ca, other.server);
  auto access = pki.Access(api.url());
  const auto nodes = MakeKubernetesClient(access)->ListNodes();
  ASSERT_FALSE(nodes);
  EXPECT_EQ(nodes.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(nodes.error().message, HasSubstr(api.url()));
}

TEST(KubernetesClientTest, AClientCertificateTheServerDoesNotTrustIsRefused) {
  ScratchDir dir;
  const Pki pki;
  const Pki other;
  StandIn api(dir, pki.ca, pki.server);
  auto access = pki.Access(api.url());
  access.client_cert_pem = other.admin.cert_pem;
  access.client_key_pem = other.admin.key_pem;
  EXPECT_FALSE(MakeKubernetesClient(access)->ListNodes());
}

TEST(KubernetesClientTest, AServerCertificateForAnotherAddressIsRefused) {
  ScratchDir dir;
  const Pki pki;
  const CertAndKey elsewhere = Pki::Issue(pki.ca, "kube-apiserver", {"10.9.9.9"}, true);
  StandIn api(dir, pki.ca, elsewhere);
  EXPECT_FALSE(MakeKubernetesClient(pki.Access(api.url()))->ListNodes());
}

TEST(KubernetesClientTest, ASlowServerTimesOut) {
  ScratchDir dir;
  const Pki pki;
  StandIn api(dir, pki.ca, pki.server, /*slow=*/true);
  auto access = pki.Access(api.url());
  access.timeout = std::chrono::milliseconds(1000);
  const auto start = std::chrono::steady_clock::now();
  const auto nodes = MakeKubernetesClient(access)->ListNodes();
  EXPECT_FALSE(nodes);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
}

TEST(KubernetesClientTest, NothingListeningIsAnErrorNotACrash) {
  const Pki pki;
  const auto nodes = MakeKubernetesClient(pki.Access("https://127.0.0.1:1"))->ListNodes();
  ASSERT_FALSE(nodes);
  EXPECT_EQ(nodes.error().code, ErrorCode::kUnavailable);
}

TEST(KubernetesClientTest, DrainsANodeThroughTheEvictionApi) {
  ScratchDir dir;
  const Pki pki;
  StandIn api(dir, pki.ca, pki.server);
  const auto client = MakeKubernetesClient(pki.Access(api.url()));

  ASSERT_TRUE(client->SetUnschedulable("lab-worker-2", true));
  const auto nodes = client->ListNodes();
  ASSERT_TRUE(nodes);
  EXPECT_TRUE((*nodes)[2].unschedulable) << "cordoned";
  ASSERT_TRUE(client->SetUnschedulable("lab-worker-1", false));
  EXPECT_FALSE((*client->ListNodes())[1].unschedulable) << "uncordoned";
  const auto missing = client->SetUnschedulable("lab-worker-9", true);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr(R"(nodes "lab-worker-9" not found)"));

  auto pods = client->ListPods("lab-worker-2");
  ASSERT_TRUE(pods) << pods.error().message;
  ASSERT_EQ(pods->size(), 5u);
  const auto find = [&](const std::string& name) {
    return *std::find_if(pods->begin(), pods->end(),
                         [&](const KubePod& p) { return p.name == name; });
  };
  EXPECT_EQ(find("web-1").ns, "default");
  EXPECT_FALSE(find("web-1").daemon_set);
  EXPECT_TRUE(find("kube-proxy-x1").daemon_set);
  EXPECT_EQ(find("kube-proxy-x1").ns, "kube-system");
  EXPECT_TRUE(find("job-1").finished);
  EXPECT_TRUE(find("old-1").terminating);
  const auto cp_pods = client->ListPods("lab-cp-1");
  ASSERT_TRUE(cp_pods);
  ASSERT_EQ(cp_pods->size(), 1u);
  EXPECT_TRUE(cp_pods->front().mirror);

  auto evicted = client->EvictPod(find("web-1"));
  ASSERT_TRUE(evicted) << evicted.error().message;
  EXPECT_EQ(evicted->outcome, EvictionOutcome::kEvicted);
  auto again = client->EvictPod(find("web-1"));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->outcome, EvictionOutcome::kGone);
  auto blocked = client->EvictPod(find("db-0"));
  ASSERT_TRUE(blocked);
  EXPECT_EQ(blocked->outcome, EvictionOutcome::kBlocked);
  EXPECT_THAT(blocked->message, HasSubstr("disruption budget"));
  pods = client->ListPods("lab-worker-2");
  ASSERT_TRUE(pods);
  EXPECT_EQ(pods->size(), 4u) << "web-1 went, db-0 stayed";

  ASSERT_TRUE(client->DeleteNode("lab-worker-2"));
  ASSERT_TRUE(client->DeleteNode("lab-worker-2")) << "an absent Node counts as deleted";
  EXPECT_EQ(client->ListNodes()->size(), 2u);

  const std::string requests = StandIn::Requests(dir);
  EXPECT_THAT(requests, HasSubstr(R"("method": "PATCH", "path": "/api/v1/nodes/lab-worker-2")"));
  EXPECT_THAT(requests, HasSubstr(R"(\"unschedulable\":true)"));
  EXPECT_THAT(requests,
              HasSubstr(R"("path": "/api/v1/pods?fieldSelector=spec.nodeName%3Dlab-worker-2")"));
  EXPECT_THAT(requests, HasSubstr(R"("path": "/api/v1/namespaces/default/pods/db-0/eviction")"));
}

// The number of lines of `text` that contain `needle`.
std::size_t CountLines(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    count += line.find(needle) != std::string::npos;
  return count;
}

// The Eviction's version comes from the server's discovery, asked once per
// client: policy/v1 where served, policy/v1beta1 on a server without it
// (Kubernetes 1.20, 1.21).
TEST(KubernetesClientTest, EvictsWithTheEvictionVersionTheServerServes) {
  for (const bool v1beta1_only : {false, true}) {
    SCOPED_TRACE(v1beta1_only ? "policy/v1beta1 only" : "policy/v1 and v1beta1");
    ScratchDir dir;
    const Pki pki;
    StandIn api(dir, pki.ca, pki.server, /*slow=*/false, v1beta1_only);
    const auto client = MakeKubernetesClient(pki.Access(api.url()));
    auto pods = client->ListPods("lab-worker-2");
    ASSERT_TRUE(pods) << pods.error().message;
    for (const char* name : {"web-1", "job-1"}) {
      const auto pod = std::find_if(pods->begin(), pods->end(),
                                    [&](const KubePod& p) { return p.name == name; });
      ASSERT_NE(pod, pods->end());
      const auto evicted = client->EvictPod(*pod);
      ASSERT_TRUE(evicted) << evicted.error().message;
      EXPECT_EQ(evicted->outcome, EvictionOutcome::kEvicted) << name;
    }
    const std::string requests = StandIn::Requests(dir);
    const std::string wanted = v1beta1_only ? "policy/v1beta1" : "policy/v1";
    EXPECT_EQ(CountLines(requests, fmt::format(R"(\"apiVersion\":\"{}\")", wanted)), 2u)
        << requests;
    EXPECT_EQ(CountLines(requests, R"("path": "/apis/policy")"), 1u) << "discovered once";
  }
  EXPECT_THAT(ParseApiGroupVersions(R"({"versions":[{"groupVersion":"policy/v1beta1"}]})").value(),
              testing::ElementsAre("policy/v1beta1"));
  EXPECT_FALSE(ParseApiGroupVersions(R"({"kind":"Status"})"));
}

TEST(KubernetesClientTest, CreatesABootstrapTokenSecret) {
  ScratchDir dir;
  const Pki pki;
  StandIn api(dir, pki.ca, pki.server);
  const auto client = MakeKubernetesClient(pki.Access(api.url()));
  BootstrapTokenSecret token;
  token.token = "abcdef.0123456789abcdef";
  token.expiration =
      std::chrono::sys_days{std::chrono::year{2026} / 12 / 1} + std::chrono::hours(6);
  token.description = "rotated by vmlab";
  ASSERT_TRUE(client->CreateBootstrapToken(token));
  ASSERT_TRUE(client->CreateBootstrapToken(token)) << "409 AlreadyExists counts as created";
  token.token = "abcdef";
  EXPECT_FALSE(client->CreateBootstrapToken(token));

  const std::string requests = StandIn::Requests(dir);
  EXPECT_THAT(requests, HasSubstr(R"("path": "/api/v1/namespaces/kube-system/secrets")"));
  for (const char* field :
       {R"(\"name\":\"bootstrap-token-abcdef\")", R"(\"type\":\"bootstrap.kubernetes.io/token\")",
        R"(\"token-id\":\"abcdef\")", R"(\"token-secret\":\"0123456789abcdef\")",
        R"(\"expiration\":\"2026-12-01T06:00:00Z\")",
        R"(\"usage-bootstrap-authentication\":\"true\")",
        R"(\"auth-extra-groups\":\"system:bootstrappers:kubeadm:default-node-token\")"}) {
    EXPECT_THAT(requests, HasSubstr(field));
  }
}

TEST(KubernetesClientTest, TheAdminKubeconfigGivesTheAccess) {
  const auto lab = testing_support::LoadLab("examples/spk-lab.yaml");
  const Pki pki;
  const auto kubeconfig = MakeAdminKubeconfig(lab, pki.ca);
  ASSERT_TRUE(kubeconfig);
  const auto access = AccessFromKubeconfig(*kubeconfig);
  ASSERT_TRUE(access) << access.error().message;
  EXPECT_EQ(access->server, "https://172.42.42.10:16443");
  EXPECT_EQ(access->ca_pem, pki.ca.cert_pem);
  EXPECT_THAT(access->client_key_pem, HasSubstr("BEGIN PRIVATE KEY"));
  EXPECT_FALSE(AccessFromKubeconfig("apiVersion: v1\nkind: Config\n"));
  EXPECT_FALSE(ParseNodeList("{\"items\": 3}"));
  EXPECT_FALSE(ParsePodList("[]"));
}

}  // namespace
}  // namespace vmlab::reconcilers::bootstrap
