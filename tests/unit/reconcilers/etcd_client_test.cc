// The etcd client against a real etcd (Debian's etcd-server): three members
// on loopback, TLS with client certificates from a lab-style etcd CA, as
// kubeadm's stacked etcd runs them. Member list, health, the quorum rule,
// etcd's own refusal of a removal that would cost quorum, and a removal.
#include "reconcilers/bootstrap/etcd_client.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "../controller/scratch_dir.h"
#include "crds/labcluster_types.h"
#include "fixtures.h"
#include "reconcilers/bootstrap/lab_secrets.h"
#include "reconcilers/bootstrap/node_config.h"
#include "reconcilers/bootstrap/pki.h"
#include "shell.h"

namespace vmlab::reconcilers::bootstrap {
namespace {

using testing::HasSubstr;
using testing_support::ScratchDir;

// A port nothing listens on right now (the kernel's choice).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), length), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  close(fd);
  return ntohs(address.sin_port);
}

CertAndKey Issue(const CertAndKey& ca, const std::string& cn, bool server) {
  CertRequest request;
  request.common_name = cn;
  request.client = true;
  request.server = server;
  if (server) request.ip_addresses = {"127.0.0.1"};
  return IssueCert(ca, request).value();
}

// etcd members (three unless asked), started for one test and ended by
// their PIDs; Join starts one more that a member add announced.
class EtcdCluster {
 public:
  explicit EtcdCluster(const ScratchDir& dir, std::size_t members = 3)
      : dir_(dir), members_(members), ca_(MakeCa("etcd-ca", std::chrono::hours(24)).value()) {
    dir.Write("ca.crt", ca_.cert_pem);
    std::vector<std::string> peers;
    for (std::size_t i = 0; i < members_; ++i) {
      client_ports_.push_back(FreePort());
      peer_ports_.push_back(FreePort());
      peers.push_back(fmt::format("lab-cp-{}={}", i + 1, PeerUrl(i)));
    }
    for (std::size_t i = 0; i < members_; ++i) {
      Start(i, fmt::format("{}", fmt::join(peers, ",")), "new");
    }
    client_ = Issue(ca_, "vmlab-etcd-client", false);
    dir.Write("client.crt", client_.cert_pem);
    dir.Write("client.key", client_.key_pem);
  }
  // The peer URL the next Join's member will have.
  std::string NextPeerUrl() {
    client_ports_.push_back(FreePort());
    peer_ports_.push_back(FreePort());
    return PeerUrl(peer_ports_.size() - 1);
  }
  // Starts that member into the existing cluster `initial_cluster`
  // ("NAME=PEER_URL,...", as kubeadm's etcd manifest names it).
  void Join(const std::string& initial_cluster) {
    Start(peer_ports_.size() - 1, initial_cluster, "existing");
  }
  // That member's etcd run in the foreground (at most 30 s) with
  // `initial_cluster`: what it printed, and its exit status in *status.
  std::string TryJoin(const std::string& initial_cluster, int* status) {
    const std::size_t i = peer_ports_.size() - 1;
    return testing_support::Shell(
        fmt::format("timeout 30 {} 2>&1", Command(i, initial_cluster, "existing")), status);
  }
  ~EtcdCluster() {
    for (const int pid : pids_) {
      if (pid > 0) kill(pid, SIGKILL);  // scratch data: no need for a clean stop
    }
  }
  void Stop(std::size_t member) {
    kill(pids_[member], SIGTERM);
    pids_[member] = 0;
  }
  [[nodiscard]] std::string Url(std::size_t member) const {
    return fmt::format("https://127.0.0.1:{}", client_ports_[member]);
  }
  [[nodiscard]] EtcdAccess Access(std::vector<std::string> endpoints) const {
    return {std::move(endpoints), ca_.cert_pem, client_.cert_pem, client_.key_pem,
            std::chrono::milliseconds(3000)};
  }
  // Waits until every member reports itself healthy.
  [[nodiscard]] bool WaitHealthy(EtcdClient& client) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      auto members = client.ListMembers();
      if (members && members->size() == members_ &&
          std::all_of(members->begin(), members->end(),
                      [&](const EtcdMember& m) { return client.Healthy(m); })) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  }
  [[nodiscard]] const CertAndKey& ca() const { return ca_; }
  [[nodiscard]] std::string PeerUrl(std::size_t member) const {
    return fmt::format("https://127.0.0.1:{}", peer_ports_[member]);
  }

 private:
  void Start(std::size_t i, const std::string& initial_cluster, const char* state) {
    const std::string d = dir_.path().string();
    const std::string name = fmt::format("lab-cp-{}", i + 1);
    EXPECT_EQ(std::system(fmt::format("{0} >{1}/{2}.log 2>&1 & echo $! >{1}/{2}.pid",
                                      Command(i, initial_cluster, state), d, name)
                              .c_str()),
              0);
    pids_.push_back(std::stoi(testing_support::ReadFile(dir_.path() / (name + ".pid"))));
  }
  // Member i's etcd command line (its certificate issued on the way).
  std::string Command(std::size_t i, const std::string& initial_cluster, const char* state) {
    const std::string d = dir_.path().string();
    const std::string name = fmt::format("lab-cp-{}", i + 1);
    const CertAndKey cert = Issue(ca_, name, true);
    dir_.Write(name + ".crt", cert.cert_pem);
    dir_.Write(name + ".key", cert.key_pem);
    return fmt::format(
        "etcd --name {n} --data-dir {d}/{n}.etcd "
        "--listen-client-urls https://127.0.0.1:{c} --advertise-client-urls "
        "https://127.0.0.1:{c} --listen-peer-urls https://127.0.0.1:{p} "
        "--initial-advertise-peer-urls https://127.0.0.1:{p} --initial-cluster '{peers}' "
        "--initial-cluster-state {state} --cert-file {d}/{n}.crt --key-file {d}/{n}.key "
        "--client-cert-auth --trusted-ca-file {d}/ca.crt --peer-cert-file {d}/{n}.crt "
        "--peer-key-file {d}/{n}.key --peer-client-cert-auth --peer-trusted-ca-file "
        "{d}/ca.crt",
        fmt::arg("n", name), fmt::arg("d", d), fmt::arg("c", client_ports_[i]),
        fmt::arg("p", peer_ports_[i]), fmt::arg("peers", initial_cluster),
        fmt::arg("state", state));
  }

  const ScratchDir& dir_;
  std::size_t members_;
  CertAndKey ca_;
  CertAndKey client_;
  std::vector<int> client_ports_;
  std::vector<int> peer_ports_;
  std::vector<int> pids_;
};

TEST(EtcdClientTest, RemovesAMemberOnlyWhileTheOthersKeepQuorum) {
  ScratchDir dir;
  EtcdCluster etcd(dir);
  // The first endpoint is the member that will stop: the client moves on.
  const auto client = MakeEtcdClient(etcd.Access({etcd.Url(2), etcd.Url(0)}));
  ASSERT_TRUE(etcd.WaitHealthy(*client)) << "etcd did not come up; see the members' logs";

  auto members = client->ListMembers();
  ASSERT_TRUE(members) << members.error().message;
  std::vector<std::string> names;
  for (const auto& m : *members) {
    names.push_back(m.name);
    EXPECT_NE(m.id, 0u);
    ASSERT_EQ(m.client_urls.size(), 1u);
    EXPECT_THAT(m.client_urls[0], testing::StartsWith("https://127.0.0.1:"));
  }
  EXPECT_THAT(names, testing::UnorderedElementsAre("lab-cp-1", "lab-cp-2", "lab-cp-3"));

  etcd.Stop(2);  // lab-cp-3 goes down
  const auto find = [&](const std::string& name) {
    return *std::find_if(members->begin(), members->end(),
                         [&](const EtcdMember& m) { return m.name == name; });
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (client->Healthy(find("lab-cp-3")) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::set<std::string> healthy;
  for (const auto& m : *members) {
    if (client->Healthy(m)) healthy.insert(m.name);
  }
  EXPECT_EQ(healthy, (std::set<std::string>{"lab-cp-1", "lab-cp-2"}));

  const auto unsafe = CheckMemberRemoval(*members, healthy, "lab-cp-2");
  EXPECT_FALSE(unsafe.allowed);
  EXPECT_EQ(unsafe.message,
            "without lab-cp-2, etcd has 2 member(s), 1 healthy (quorum 2); not healthy: lab-cp-3");
  // etcd's own strict reconfiguration check agrees.
  const auto refused = client->RemoveMember(find("lab-cp-2").id);
  ASSERT_FALSE(refused) << "etcd removed a member it needed for quorum";
  EXPECT_THAT(refused.error().message, HasSubstr("etcdserver: unhealthy cluster"));

  const auto safe = CheckMemberRemoval(*members, healthy, "lab-cp-3");
  EXPECT_TRUE(safe.allowed) << safe.message;
  const std::uint64_t gone = find("lab-cp-3").id;
  ASSERT_TRUE(client->RemoveMember(gone));
  members = client->ListMembers();
  ASSERT_TRUE(members);
  EXPECT_EQ(members->size(), 2u);
  const auto again = client->RemoveMember(gone);
  ASSERT_FALSE(again);
  EXPECT_THAT(again.error().message, HasSubstr("member not found"));
}

TEST(EtcdClientTest, TrustsOnlyTheLabsEtcdCa) {
  ScratchDir dir;
  EtcdCluster etcd(dir);
  ASSERT_TRUE(etcd.WaitHealthy(*MakeEtcdClient(etcd.Access({etcd.Url(0)}))));
  // A client certificate from another CA: etcd refuses the handshake.
  const auto other = MakeCa("etcd-ca", std::chrono::hours(24)).value();
  const auto stranger = Issue(other, "stranger", false);
  auto access = etcd.Access({etcd.Url(0)});
  access.client_cert_pem = stranger.cert_pem;
  access.client_key_pem = stranger.key_pem;
  auto listed = MakeEtcdClient(access)->ListMembers();
  ASSERT_FALSE(listed);
  EXPECT_EQ(listed.error().code, ErrorCode::kUnavailable);
  // A server the client's CA did not sign: refused by the client.
  access = etcd.Access({etcd.Url(0)});
  access.ca_pem = other.cert_pem;
  EXPECT_FALSE(MakeEtcdClient(access)->ListMembers());
  EXPECT_FALSE(MakeEtcdClient(etcd.Access({}))->ListMembers()) << "no endpoint";
}

// The learner helper a joining control plane runs (/etc/vmlab/etcd-learner.py
// from its seed) against a real one-member etcd. Its member is added as a
// learner: the one voter keeps its quorum while the new member is not yet
// running (a voter added then would stop the cluster). Adding again changes
// nothing; etcd refuses the promotion until the learner runs and has caught
// up, then the member votes. Endpoints are tried in order.
TEST(EtcdLearnerTest, AJoiningControlPlaneIsALearnerUntilItHasCaughtUp) {
  ScratchDir dir;
  EtcdCluster etcd(dir, 1);
  const auto client = MakeEtcdClient(etcd.Access({etcd.Url(0)}));
  ASSERT_TRUE(etcd.WaitHealthy(*client)) << "etcd did not come up; see the member's log";

  const auto lab = testing_support::LoadLab("examples/spk-lab.yaml");
  const auto nodes = crds::PlanNodes(lab);
  const auto secrets = MakeLabSecrets(lab, std::chrono::system_clock::now());
  ASSERT_TRUE(secrets) << secrets.error().message;
  std::string helper_text;
  for (const auto& file : NodeFiles(lab, nodes.at(1), *secrets, {})) {
    if (file.path == "/etc/vmlab/etcd-learner.py") helper_text = file.content;
  }
  ASSERT_FALSE(helper_text.empty()) << "a joining control plane's seed carries the helper";
  dir.Write("etcd-learner.py", helper_text);
  const std::string d = dir.path().string();
  const std::string peer = etcd.NextPeerUrl();
  const std::string dead = fmt::format("https://127.0.0.1:{}", FreePort());
  const auto helper = [&](const std::string& action, int* status) {
    return testing_support::Shell(
        fmt::format("python3 {0}/etcd-learner.py {1} {2} {3} {4} --cacert {0}/ca.crt "
                    "--cert {0}/client.crt --key {0}/client.key --timeout 5 2>&1",
                    d, action, peer, dead, etcd.Url(0)),
        status);
  };
  const auto learners = [&] {
    std::vector<std::string> out;
    for (const auto& m : client->ListMembers().value_or(std::vector<EtcdMember>{})) {
      if (m.learner) out.insert(out.end(), m.peer_urls.begin(), m.peer_urls.end());
    }
    return out;
  };

  int status = -1;
  std::string out = helper("add", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_THAT(out, HasSubstr(dead + ": ")) << "the dead endpoint was tried first";
  EXPECT_THAT(out, HasSubstr(peer + " added to etcd as a learner"));
  auto members = client->ListMembers();
  ASSERT_TRUE(members) << members.error().message;
  EXPECT_EQ(members->size(), 2u);
  EXPECT_THAT(learners(), testing::ElementsAre(peer));
  const EtcdMember voter = *std::find_if(members->begin(), members->end(),
                                         [](const EtcdMember& m) { return !m.learner; });
  EXPECT_TRUE(client->Healthy(voter)) << "the voter keeps its quorum beside a learner not running";

  out = helper("add", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_THAT(out, HasSubstr(peer + " is a learner of etcd already"));
  EXPECT_EQ(client->ListMembers().value_or(std::vector<EtcdMember>{}).size(), 2u);

  out = helper("promote", &status);
  EXPECT_NE(status, 0) << "promoted a learner that does not run: " << out;
  EXPECT_THAT(out, HasSubstr("can only promote a learner member which is in sync with leader"));

  // kubeadm 1.20's etcd step finds the member and writes the static pod with
  // --initial-cluster from the member list, names as listed: the learner that
  // has never run has none, and etcd refuses to start with that.
  std::vector<std::string> listed;
  for (const auto& m : client->ListMembers().value_or(std::vector<EtcdMember>{})) {
    listed.push_back(fmt::format("{}={}", m.name, m.peer_urls.at(0)));
  }
  std::sort(listed.begin(), listed.end());
  const std::string unnamed = fmt::format("{}", fmt::join(listed, ","));
  EXPECT_EQ(unnamed, fmt::format("={},lab-cp-1={}", peer, etcd.PeerUrl(0)));
  out = etcd.TryJoin(unnamed, &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_THAT(out, HasSubstr(R"(couldn't find local name "lab-cp-2" in the initial cluster)"));

  // The helper names the entry after the manifest's --name (kubeadm's layout).
  const std::string manifest_head =
      "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  namespace: kube-system\n"
      "spec:\n  containers:\n  - command:\n    - etcd\n"
      "    - --advertise-client-urls=https://127.0.0.1:2379\n";
  const std::string manifest_tail =
      "    - --initial-cluster-state=existing\n    - --name=lab-cp-2\n    image: etcd:3.4\n";
  dir.Write("etcd.yaml",
            manifest_head + "    - --initial-cluster=" + unnamed + "\n" + manifest_tail);
  const auto name = [&](const std::string& manifest, int* code) {
    return testing_support::Shell(
        fmt::format("python3 {0}/etcd-learner.py name {1} --manifest {0}/{2} 2>&1", d, peer, manifest),
        code);
  };
  out = name("etcd.yaml", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_THAT(out, HasSubstr("names lab-cp-2=" + peer + " now"));
  const std::string named = fmt::format("lab-cp-2={},lab-cp-1={}", peer, etcd.PeerUrl(0));
  EXPECT_EQ(testing_support::ReadFile(dir.path() / "etcd.yaml"),
            manifest_head + "    - --initial-cluster=" + named + "\n" + manifest_tail)
      << "only that entry changes";
  out = name("etcd.yaml", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_THAT(out, HasSubstr("names lab-cp-2=" + peer + " already"));
  dir.Write("other.yaml", manifest_head + "    - --initial-cluster=lab-cp-1=" + etcd.PeerUrl(0) +
                              "\n" + manifest_tail);
  out = name("other.yaml", &status);
  EXPECT_NE(status, 0) << "a manifest without the member is not made up: " << out;
  out = name("none.yaml", &status);
  EXPECT_NE(status, 0) << out;
  EXPECT_THAT(out, HasSubstr("no etcd manifest yet"));

  etcd.Join(named);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  do {
    out = helper("promote", &status);
    if (status == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(status, 0) << "the running learner was never promoted: " << out;
  EXPECT_THAT(out, HasSubstr(peer + " promoted to a voting member of etcd"));
  EXPECT_TRUE(learners().empty());
  members = client->ListMembers();
  ASSERT_TRUE(members);
  EXPECT_EQ(members->size(), 2u);
  for (const auto& m : *members) EXPECT_TRUE(client->Healthy(m)) << m.name;
  out = helper("promote", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_THAT(out, HasSubstr(peer + " is a voting member of etcd"));
}

TEST(EtcdClientTest, QuorumRuleCountsVotersOnly) {
  const std::vector<EtcdMember> members = {{1, "a", {}, {}, false},
                                           {2, "b", {}, {}, false},
                                           {3, "c", {}, {}, false},
                                           {4, "l", {}, {}, true}};
  EXPECT_TRUE(CheckMemberRemoval(members, {"a", "b"}, "c").allowed);
  EXPECT_FALSE(CheckMemberRemoval(members, {"a"}, "c").allowed);
  EXPECT_FALSE(CheckMemberRemoval({{1, "a", {}, {}, false}}, {"a"}, "a").allowed) << "the last one";
  EXPECT_EQ(CheckMemberRemoval({{1, "a", {}, {}, false}}, {"a"}, "a").message,
            "a is etcd's last member");
  EXPECT_FALSE(ParseMemberList(R"({"members": 3})"));
  const auto parsed = ParseMemberList(
      R"({"members":[{"ID":"13668033151171901709","name":"m1","clientURLs":["https://x:2379"]},{"ID":"7","isLearner":true}]})");
  ASSERT_TRUE(parsed);
  EXPECT_EQ((*parsed)[0].id, 13668033151171901709u) << "IDs above 2^63 survive";
  EXPECT_TRUE((*parsed)[1].learner);
  const auto unstarted =
      ParseMemberList(R"({"members":[{"ID":"9","peerURLs":["https://10.0.0.12:2380"]}]})");
  ASSERT_TRUE(unstarted);
  EXPECT_EQ((*unstarted)[0].name, "") << "added, never started: no name yet";
  EXPECT_THAT((*unstarted)[0].peer_urls, testing::ElementsAre("https://10.0.0.12:2380"));
}

}  // namespace
}  // namespace vmlab::reconcilers::bootstrap
