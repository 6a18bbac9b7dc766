// The bootstrap artifacts of every node, checked by the real tools that will
// read them: cloud-init's schema, bash and shellcheck, haproxy -c,
// keepalived -t; kubeadm's configuration as YAML with the spec's values; and
// golden files (with fixed test material in place of secrets).
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "../controller/scratch_dir.h"
#include "crds/labcluster_parse.h"
#include "fixtures.h"
#include "reconcilers/bootstrap/node_config.h"
#include "reconcilers/bootstrap/user_data.h"
#include "reconcilers/infrastructure/lab_layout.h"
#include "shell.h"

namespace vmlab::reconcilers::bootstrap {
namespace {

using testing::HasSubstr;
using testing::Not;
using testing_support::ExpectGolden;
using testing_support::ScratchDir;
using testing_support::Shell;

crds::LabCluster Parse(const std::string& name, const std::string& text) {
  return testing_support::ParseLab(name, text);
}
crds::LabCluster Load(const std::string& relative) { return testing_support::LoadLab(relative); }

// 3 control planes and 5 workers, cilium, add-ons by URL and by path, 1.31 (kubeadm v1beta4).
crds::LabCluster BigLab() {
  return Parse("big.yaml",
               "apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata: {name: big}\nspec:\n"
               "  kubernetes: {version: \"1.31.2\", cni: cilium}\n"
               "  network: {cidr: 10.20.0.0/24, domain: big.lab}\n"
               "  controlPlane: {replicas: 3, endpoint: {host: bigapi, port: 8443}}\n"
               "  workers: {replicas: 5}\n"
               "  cache: {imageArchives: /srv/images}\n"
               "  addons:\n"
               "    - https://github.com/cert-manager/cert-manager/releases/download/v1.15.3/"
               "cert-manager.yaml\n"
               "    - /srv/manifests/openebs.yaml\n");
}

// Kubernetes 1.20 (kubeadm v1beta2) with cni: bridge, small control plane: 1 + 1 nodes.
crds::LabCluster OldBridgeLab() { return Load("tests/fixtures/valid/kubernetes-120-bridge.yaml"); }

crds::LabCluster WithVersion(crds::LabCluster lab, const std::string& version) {
  lab.spec.kubernetes.version = version;
  return lab;
}

// Fixed material in place of secrets, so golden files do not change per run.
LabSecrets TestSecrets() {
  LabSecrets s;
  auto pem = [](const char* kind, const char* what) {
    return fmt::format("-----BEGIN {0}-----\nTEST MATERIAL: {1}\n-----END {0}-----\n", kind, what);
  };
  s.ca = {pem("CERTIFICATE", "cluster CA"), pem("PRIVATE KEY", "cluster CA key")};
  s.front_proxy_ca = {pem("CERTIFICATE", "front-proxy CA"),
                      pem("PRIVATE KEY", "front-proxy CA key")};
  s.etcd_ca = {pem("CERTIFICATE", "etcd CA"), pem("PRIVATE KEY", "etcd CA key")};
  s.service_account = {pem("PRIVATE KEY", "service-account key"),
                       pem("PUBLIC KEY", "service-account public key")};
  s.token = "abcdef.0123456789abcdef";
  s.token_ttl = std::chrono::hours(24);
  s.discovery_hash = "sha256:" + std::string(64, '0');
  s.vrrp_password = "testpass";
  s.vrrp_router_id = 42;
  return s;
}

NodeEnvironment TestEnvironment() {
  NodeEnvironment env;
  env.host_files["/srv/manifests/openebs.yaml"] = "apiVersion: v1\nkind: Namespace\n";
  return env;
}

std::map<std::string, NodeFile> FilesByPath(const crds::LabCluster& lab,
                                            const crds::PlannedNode& node,
                                            const LabSecrets& secrets) {
  std::map<std::string, NodeFile> out;
  for (auto& f : NodeFiles(lab, node, secrets, TestEnvironment())) out[f.path] = f;
  return out;
}

TEST(BootstrapTest, SeedLabUserDataMatchesGolden) {
  const auto lab = Load("examples/spk-lab.yaml");
  auto nodes = crds::PlanNodes(lab);
  nodes.push_back(infrastructure::GoldenBuilderNode(lab));
  for (const auto& node : nodes) {
    ExpectGolden("tests/fixtures/golden/bootstrap/" + node.name + ".user-data",
                 RenderUserData(lab, node, TestSecrets(), TestEnvironment()));
  }
}

TEST(BootstrapTest, Kubernetes120BridgeLabUserDataMatchesGolden) {
  const auto lab = OldBridgeLab();
  for (const auto& node : crds::PlanNodes(lab)) {
    ExpectGolden("tests/fixtures/golden/bootstrap/" + node.name + ".user-data",
                 RenderUserData(lab, node, TestSecrets(), TestEnvironment()));
  }
}

// Every node of the labs: user-data, scripts, haproxy and keepalived
// configurations through their tools.
class ValidatorsTest : public testing::TestWithParam<const char*> {};

TEST_P(ValidatorsTest, EveryArtifactPassesItsRealValidator) {
  const std::string which = GetParam();
  const auto lab = which == "seed"  ? Load("examples/spk-lab.yaml")
                   : which == "old" ? OldBridgeLab()
                                    : BigLab();
  const auto secrets = MakeLabSecrets(lab, std::chrono::system_clock::now());
  ASSERT_TRUE(secrets) << secrets.error().message;
  ScratchDir dir;
  const std::string d = dir.path().string();
  std::set<std::string> scripts_checked;
  auto nodes = crds::PlanNodes(lab);
  nodes.push_back(infrastructure::GoldenBuilderNode(lab));
  for (const auto& node : nodes) {
    SCOPED_TRACE(node.name);
    dir.Write("user-data", RenderUserData(lab, node, *secrets, TestEnvironment()));
    int status = 0;
    const std::string schema = Shell("cloud-init schema -c " + d + "/user-data 2>&1", &status);
    EXPECT_EQ(status, 0) << schema;
    EXPECT_THAT(schema, HasSubstr("Valid cloud-config"));

    for (const auto& [path, file] : FilesByPath(lab, node, *secrets)) {
      if (path.ends_with(".py")) {
        dir.Write("helper.py", file.content);
        const std::string compiled =
            Shell("python3 -m py_compile " + d + "/helper.py 2>&1", &status);
        EXPECT_EQ(status, 0) << path << ":\n" << compiled;
        scripts_checked.insert(path);
      }
      if (!path.ends_with(".sh")) continue;
      dir.Write("script.sh", file.content);
      Shell("bash -n " + d + "/script.sh");
      const std::string findings = Shell("shellcheck -s bash " + d + "/script.sh 2>&1", &status);
      EXPECT_EQ(status, 0) << path << ":\n" << findings;
      EXPECT_THAT(file.content, HasSubstr("set -euo pipefail")) << path;
      scripts_checked.insert(path);
    }
    if (node.role != crds::NodeRole::kControlPlane) continue;
    dir.Write("haproxy.cfg", RenderHaproxyConfig(lab));
    const std::string haproxy = Shell("haproxy -c -f " + d + "/haproxy.cfg 2>&1", &status);
    EXPECT_EQ(status, 0) << haproxy;
    EXPECT_THAT(haproxy, HasSubstr("Configuration file is valid"));
    dir.Write("keepalived.conf", RenderKeepalivedConfig(lab, node, *secrets));
    const std::string keepalived =
        Shell("keepalived -t -f " + d + "/keepalived.conf 2>&1", &status);
    EXPECT_EQ(status, 0) << keepalived;
  }
  std::set<std::string> expected = {
      "/etc/vmlab/bootstrap.sh",       "/etc/vmlab/phases/base.sh",
      "/etc/vmlab/phases/endpoint.sh", "/etc/vmlab/phases/kubernetes.sh",
      "/etc/vmlab/phases/primary.sh",  "/etc/vmlab/phases/worker.sh",
      "/etc/vmlab/phases/golden.sh"};
  // The 1.20 bridge lab has one control plane, and the pod routes script.
  expected.insert(which == "old" ? kPodRoutesScriptPath : "/etc/vmlab/phases/secondary.sh");
  if (which != "old") expected.insert("/etc/vmlab/etcd-learner.py");
  EXPECT_THAT(scripts_checked, testing::IsSupersetOf(expected));
}

// The golden image builder: the download phases, the lab's images pulled,
// then the VM cleans what is its own and powers off; it joins nothing.
TEST(BootstrapTest, TheGoldenImageBuilderDownloadsSealsAndPowersOff) {
  const auto lab = Load("examples/spk-lab.yaml");
  const auto builder = infrastructure::GoldenBuilderNode(lab);
  EXPECT_EQ(builder.name, "spk-golden");
  EXPECT_EQ(builder.index, 0);
  const auto phases = PhasesFor(lab, builder);
  EXPECT_EQ(phases, (std::vector<Phase>{Phase::kBase, Phase::kKubernetes, Phase::kGolden}));
  const auto files = FilesByPath(lab, builder, TestSecrets());
  EXPECT_FALSE(files.contains("/etc/vmlab/kubeadm.yaml")) << "the builder joins nothing";
  EXPECT_FALSE(files.contains("/etc/vmlab/pki/ca.key"));
  const std::string runner = files.at("/etc/vmlab/bootstrap.sh").content;
  const auto done = runner.find("bootstrap done");
  const auto seal = runner.find("cloud-init clean --logs --seed");
  const auto off = runner.find("systemctl poweroff");
  ASSERT_NE(done, std::string::npos);
  ASSERT_NE(seal, std::string::npos);
  ASSERT_NE(off, std::string::npos);
  EXPECT_LT(done, seal) << "sealed after its last report";
  EXPECT_LT(seal, off);
  EXPECT_THAT(runner, HasSubstr("truncate -s 0 /etc/machine-id"));
  EXPECT_THAT(runner, HasSubstr("rm -rf /etc/vmlab "));
  for (const auto& [path, file] : FilesByPath(lab, crds::PlanNodes(lab)[0], TestSecrets())) {
    if (path == "/etc/vmlab/bootstrap.sh") {
      EXPECT_THAT(file.content, Not(HasSubstr("poweroff"))) << "nodes do not seal";
    }
  }
  const std::string golden = files.at("/etc/vmlab/phases/golden.sh").content;
  for (const char* image :
       {"registry.k8s.io/kube-apiserver:v1.30.4", "registry.k8s.io/kube-proxy:v1.30.4",
        "registry.k8s.io/pause:3.9", "docker.io/calico/node:v3.28.1"}) {
    EXPECT_THAT(golden, HasSubstr(image)) << "both roles' images";
  }
  EXPECT_THAT(golden, HasSubstr("ctr -n k8s.io images pull"));
}

INSTANTIATE_TEST_SUITE_P(Labs, ValidatorsTest, testing::Values("seed", "big", "old"));

TEST(BootstrapTest, HaproxyBalancesEveryControlPlaneAndKeepalivedHoldsTheVip) {
  const auto lab = BigLab();
  const std::string haproxy = RenderHaproxyConfig(lab);
  EXPECT_THAT(haproxy, HasSubstr("bind *:8443"));
  EXPECT_THAT(haproxy, HasSubstr("server big-cp-1 10.20.0.11:6443"));
  EXPECT_THAT(haproxy, HasSubstr("server big-cp-3 10.20.0.13:6443"));
  EXPECT_THAT(haproxy, Not(HasSubstr("worker")));
  const auto nodes = crds::PlanNodes(lab);
  const std::string keepalived = RenderKeepalivedConfig(lab, nodes[1], TestSecrets());
  EXPECT_THAT(keepalived, HasSubstr("priority 148"));
  EXPECT_THAT(keepalived, Not(HasSubstr("unicast"))) << "VRRP by multicast on the lab bridge";
  EXPECT_THAT(keepalived, HasSubstr("virtual_router_id 42"));
  EXPECT_THAT(keepalived, HasSubstr("auth_pass testpass"));
  EXPECT_THAT(keepalived, HasSubstr("10.20.0.10/24 dev eth0"));
  EXPECT_THAT(keepalived, Not(HasSubstr("virtual_router_id 51"))) << "never the seed's fixed id";
}

// A control plane's keepalived configuration names no other node, so one
// created before a control-plane scale-up still agrees with the newcomers on
// who holds the VIP (with unicast peers baked in, both took it).
TEST(BootstrapTest, KeepalivedConfigurationDoesNotChangeWithTheControlPlaneCount) {
  auto lab = BigLab();
  lab.spec.control_plane.replicas = 1;
  const auto lone = crds::PlanNodes(lab);
  const std::string before = RenderKeepalivedConfig(lab, lone[0], TestSecrets());
  lab.spec.control_plane.replicas = 3;
  const auto three = crds::PlanNodes(lab);
  EXPECT_EQ(RenderKeepalivedConfig(lab, three[0], TestSecrets()), before);
  EXPECT_NE(RenderKeepalivedConfig(lab, three[2], TestSecrets()), before) << "its own priority";
}

TEST(BootstrapTest, KubeadmConfigurationCarriesTheSpec) {
  const auto lab = Load("examples/spk-lab.yaml");
  const auto nodes = crds::PlanNodes(lab);
  const auto secrets = TestSecrets();
  const auto docs = YAML::LoadAll(RenderKubeadmConfig(lab, nodes[0], secrets));
  ASSERT_EQ(docs.size(), 3u);
  const YAML::Node& init = docs[0];
  EXPECT_EQ(init["apiVersion"].as<std::string>(), "kubeadm.k8s.io/v1beta3");
  EXPECT_EQ(init["kind"].as<std::string>(), "InitConfiguration");
  EXPECT_EQ(init["bootstrapTokens"][0]["token"].as<std::string>(), secrets.token);
  EXPECT_EQ(init["bootstrapTokens"][0]["ttl"].as<std::string>(), "86400s");
  EXPECT_EQ(init["localAPIEndpoint"]["advertiseAddress"].as<std::string>(), "172.42.42.11")
      << "the node's own address, never the NAT interface's";
  EXPECT_EQ(init["nodeRegistration"]["kubeletExtraArgs"]["node-ip"].as<std::string>(),
            "172.42.42.11");
  EXPECT_EQ(init["nodeRegistration"]["criSocket"].as<std::string>(),
            "unix:///run/containerd/containerd.sock");
  const YAML::Node& cluster = docs[1];
  EXPECT_EQ(cluster["kind"].as<std::string>(), "ClusterConfiguration");
  EXPECT_EQ(cluster["kubernetesVersion"].as<std::string>(), "v" + lab.spec.kubernetes.version);
  EXPECT_EQ(cluster["controlPlaneEndpoint"].as<std::string>(), "spkcluster.lab.local:16443");
  EXPECT_EQ(cluster["networking"]["podSubnet"].as<std::string>(), "10.217.0.0/16");
  EXPECT_EQ(cluster["networking"]["serviceSubnet"].as<std::string>(), "10.96.0.0/12");
  std::vector<std::string> sans;
  for (const auto& san : cluster["apiServer"]["certSANs"]) sans.push_back(san.as<std::string>());
  EXPECT_THAT(sans, testing::ElementsAre("spkcluster", "spkcluster.lab.local", "172.42.42.10"));
  EXPECT_EQ(docs[2]["cgroupDriver"].as<std::string>(), "systemd");
  // Leader election that survives a slow API server (a loaded TCG host).
  for (const char* component : {"controllerManager", "scheduler"}) {
    const auto args = cluster[component]["extraArgs"];
    ASSERT_TRUE(args.IsMap()) << component;
    EXPECT_EQ(args["leader-elect-lease-duration"].as<std::string>(), "60s") << component;
    EXPECT_EQ(args["leader-elect-renew-deadline"].as<std::string>(), "40s") << component;
    EXPECT_EQ(args["leader-elect-retry-period"].as<std::string>(), "5s") << component;
  }
  // etcd's elections slowed for a loaded host: 500 ms heartbeats, 5 s timeout.
  const auto etcd = cluster["etcd"]["local"]["extraArgs"];
  ASSERT_TRUE(etcd.IsMap());
  EXPECT_EQ(etcd["heartbeat-interval"].as<std::string>(), "500");
  EXPECT_EQ(etcd["election-timeout"].as<std::string>(), "5000");

  const auto join = YAML::Load(RenderKubeadmConfig(lab, nodes[1], secrets));
  EXPECT_EQ(join["kind"].as<std::string>(), "JoinConfiguration");
  EXPECT_EQ(join["discovery"]["bootstrapToken"]["apiServerEndpoint"].as<std::string>(),
            "spkcluster.lab.local:16443");
  EXPECT_EQ(join["discovery"]["bootstrapToken"]["caCertHashes"][0].as<std::string>(),
            secrets.discovery_hash);
  EXPECT_EQ(join["controlPlane"]["localAPIEndpoint"]["advertiseAddress"].as<std::string>(),
            "172.42.42.12");
  const auto worker = YAML::Load(RenderKubeadmConfig(lab, nodes[2], secrets));
  EXPECT_FALSE(worker["controlPlane"]) << "a worker joins as a worker";
  EXPECT_EQ(worker["nodeRegistration"]["name"].as<std::string>(), "spk-worker-1");
}

TEST(BootstrapTest, Kubernetes131UsesKubeadmV1beta4AndItsArgumentLists) {
  const auto lab = BigLab();
  const auto docs = YAML::LoadAll(RenderKubeadmConfig(lab, crds::PlanNodes(lab)[0], TestSecrets()));
  EXPECT_EQ(docs[0]["apiVersion"].as<std::string>(), "kubeadm.k8s.io/v1beta4");
  const auto args = docs[0]["nodeRegistration"]["kubeletExtraArgs"];
  ASSERT_TRUE(args.IsSequence());
  EXPECT_EQ(args[0]["name"].as<std::string>(), "node-ip");
  EXPECT_EQ(args[0]["value"].as<std::string>(), "10.20.0.11");
  const auto leader = docs[1]["controllerManager"]["extraArgs"];
  ASSERT_TRUE(leader.IsSequence());
  EXPECT_EQ(leader[0]["name"].as<std::string>(), "leader-elect-lease-duration");
  EXPECT_EQ(leader[0]["value"].as<std::string>(), "60s");
  const auto etcd = docs[1]["etcd"]["local"]["extraArgs"];
  ASSERT_TRUE(etcd.IsSequence());
  EXPECT_EQ(etcd[1]["name"].as<std::string>(), "election-timeout");
  EXPECT_EQ(etcd[1]["value"].as<std::string>(), "5000");
  EXPECT_EQ(docs[0]["timeouts"]["controlPlaneComponentHealthCheck"].as<std::string>(), "20m0s");
  EXPECT_FALSE(docs[1]["apiServer"]["timeoutForControlPlane"]) << "not in v1beta4";
  EXPECT_FALSE(docs[1]["imageRepository"]) << "registry.k8s.io is kubeadm's default";
  const auto nodes = crds::PlanNodes(lab);
  const auto secondary = YAML::Load(RenderKubeadmConfig(lab, nodes[1], TestSecrets()));
  EXPECT_EQ(secondary["timeouts"]["controlPlaneComponentHealthCheck"].as<std::string>(), "20m0s");
  const auto worker = YAML::Load(RenderKubeadmConfig(lab, nodes[3], TestSecrets()));
  EXPECT_FALSE(worker["timeouts"]) << "a worker starts no control plane";
}

TEST(BootstrapTest, TheKubeadmApiFollowsTheMinor) {
  for (const auto& [version, api] :
       std::vector<std::pair<std::string, std::string>>{{"1.20.2", "v1beta2"},
                                                        {"1.21.14", "v1beta2"},
                                                        {"1.22.0", "v1beta3"},
                                                        {"1.30.9", "v1beta3"},
                                                        {"1.31.0", "v1beta4"},
                                                        {"1.32.3", "v1beta4"}}) {
    EXPECT_EQ(KubeadmApiVersion(version), "kubeadm.k8s.io/" + api) << version;
  }
  EXPECT_EQ(CriSocket("1.20.2"), "/run/containerd/containerd.sock");
  EXPECT_EQ(CriSocket("1.23.17"), "/run/containerd/containerd.sock");
  EXPECT_EQ(CriSocket("1.24.0"), "unix:///run/containerd/containerd.sock");
}

// kubeadm 1.20's v1beta2: the socket as a path, images from registry.k8s.io
// (its default k8s.gcr.io is frozen), a control-plane wait long enough for
// TCG guests, and the preflight checks the lab fails passed over by name.
TEST(BootstrapTest, Kubernetes120GetsAValidV1beta2Configuration) {
  const auto lab = OldBridgeLab();
  const auto nodes = crds::PlanNodes(lab);
  const auto docs = YAML::LoadAll(RenderKubeadmConfig(lab, nodes[0], TestSecrets()));
  ASSERT_EQ(docs.size(), 3u);
  for (const auto& doc : {docs[0], docs[1]}) {
    EXPECT_EQ(doc["apiVersion"].as<std::string>(), "kubeadm.k8s.io/v1beta2");
  }
  const auto registration = docs[0]["nodeRegistration"];
  EXPECT_EQ(registration["criSocket"].as<std::string>(), "/run/containerd/containerd.sock");
  EXPECT_TRUE(registration["kubeletExtraArgs"].IsMap()) << "v1beta2 takes a map";
  std::vector<std::string> ignored;
  for (const auto& name : registration["ignorePreflightErrors"]) {
    ignored.push_back(name.as<std::string>());
  }
  EXPECT_THAT(ignored, testing::ElementsAre("NumCPU", "Mem", "FileExisting-crictl"));
  EXPECT_EQ(docs[1]["imageRepository"].as<std::string>(), "registry.k8s.io");
  EXPECT_FALSE(docs[1]["dns"]) << "kubeadm 1.20's CoreDNS image is REPOSITORY/coredns";
  EXPECT_EQ(docs[1]["apiServer"]["timeoutForControlPlane"].as<std::string>(), "20m0s");
  EXPECT_FALSE(docs[0]["timeouts"]) << "v1beta4 only";

  const auto worker = YAML::Load(RenderKubeadmConfig(lab, nodes[1], TestSecrets()));
  EXPECT_EQ(worker["apiVersion"].as<std::string>(), "kubeadm.k8s.io/v1beta2");
  ASSERT_EQ(worker["nodeRegistration"]["ignorePreflightErrors"].size(), 1u)
      << "kubeadm checks CPUs and memory on control planes only";
  EXPECT_EQ(worker["nodeRegistration"]["ignorePreflightErrors"][0].as<std::string>(),
            "FileExisting-crictl");

  const auto v121 = WithVersion(lab, "1.21.14");
  const auto docs121 = YAML::LoadAll(RenderKubeadmConfig(v121, nodes[0], TestSecrets()));
  EXPECT_EQ(docs121[1]["dns"]["imageRepository"].as<std::string>(), "registry.k8s.io/coredns")
      << "kubeadm 1.21 says coredns/coredns only under its default repository";
  std::vector<std::string> ignored121;
  for (const auto& name : docs121[0]["nodeRegistration"]["ignorePreflightErrors"]) {
    ignored121.push_back(name.as<std::string>());
  }
  EXPECT_THAT(ignored121, testing::ElementsAre("NumCPU", "Mem"));

  const auto spk = Load("examples/spk-lab.yaml");
  const auto spk_docs =
      YAML::LoadAll(RenderKubeadmConfig(spk, crds::PlanNodes(spk)[0], TestSecrets()));
  EXPECT_FALSE(spk_docs[0]["nodeRegistration"]["ignorePreflightErrors"])
      << "2 CPUs and 2048 MiB pass kubeadm's checks";
  EXPECT_FALSE(spk_docs[1]["imageRepository"]);
  EXPECT_EQ(spk_docs[1]["apiServer"]["timeoutForControlPlane"].as<std::string>(), "20m0s");
}

// kubeadm 1.20 stops in its preflight phase of init and of a control-plane
// join when crictl is missing, whatever is ignored: the script skips that
// phase then; workers only need FileExisting-crictl ignored.
TEST(BootstrapTest, Kubernetes120ControlPlanesSkipPreflightWithoutCrictl) {
  const auto lab = OldBridgeLab();
  const auto nodes = crds::PlanNodes(lab);
  const std::string primary = RenderPhaseScript(Phase::kPrimary, lab, nodes[0], {});
  EXPECT_THAT(primary, HasSubstr("if ! command -v crictl >/dev/null; then"));
  EXPECT_THAT(primary, HasSubstr("skip=(--skip-phases=preflight)"));
  EXPECT_THAT(primary, HasSubstr(R"(kubeadm init --config /etc/vmlab/kubeadm.yaml )"
                                 R"(--experimental-patches /etc/vmlab/kubeadm-patches "${skip[@]}")"));
  const std::string worker = RenderPhaseScript(Phase::kWorker, lab, nodes[1], {});
  EXPECT_THAT(worker, Not(HasSubstr("--skip-phases")));
  const auto spk = Load("examples/spk-lab.yaml");
  EXPECT_THAT(RenderPhaseScript(Phase::kPrimary, spk, crds::PlanNodes(spk)[0], {}),
              Not(HasSubstr("--skip-phases")));
}

// Every static pod of a control plane gets lenient probes through kubeadm's
// patches: a flag before 1.22 (init, the control-plane join and its etcd
// step), the configuration's patches.directory from 1.22; workers have none.
TEST(BootstrapTest, ControlPlaneStaticPodsGetLenientProbesThroughKubeadmPatches) {
  for (const char* version : {"1.20.2", "1.30.4"}) {
    const bool flag = std::string(version) == "1.20.2";
    const auto lab = WithVersion(Load("examples/spk-lab.yaml"), version);
    const auto nodes = crds::PlanNodes(lab);
    const auto& primary = nodes[0];
    const auto& secondary = nodes[1];
    const auto& worker = nodes.back();
    ASSERT_EQ(secondary.role, crds::NodeRole::kControlPlane) << version;
    ASSERT_EQ(worker.role, crds::NodeRole::kWorker) << version;
    for (const auto& cp : {primary, secondary}) {
      const auto files = FilesByPath(lab, cp, TestSecrets());
      for (const char* pod : {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"}) {
        const auto it = files.find(fmt::format("/etc/vmlab/kubeadm-patches/{}.yaml", pod));
        ASSERT_NE(it, files.end()) << cp.name << " " << pod;
        const auto patch = YAML::Load(it->second.content);
        const auto container = patch["spec"]["containers"][0];
        EXPECT_EQ(container["name"].as<std::string>(), pod);
        EXPECT_EQ(container["livenessProbe"]["timeoutSeconds"].as<int>(), 30);
        EXPECT_EQ(container["livenessProbe"]["failureThreshold"].as<int>(), 30);
        EXPECT_EQ(container["startupProbe"]["failureThreshold"].as<int>(), 120);
      }
    }
    const std::string patches = " --experimental-patches /etc/vmlab/kubeadm-patches";
    const std::string init = RenderPhaseScript(Phase::kPrimary, lab, primary, {});
    const std::string join = RenderPhaseScript(Phase::kSecondary, lab, secondary, {});
    EXPECT_EQ(init.find("kubeadm init --config /etc/vmlab/kubeadm.yaml" + patches) !=
                  std::string::npos,
              flag)
        << version << init;
    EXPECT_EQ(join.find("kubeadm join --config /etc/vmlab/kubeadm.yaml" + patches) !=
                  std::string::npos,
              flag)
        << version;
    EXPECT_EQ(join.find("control-plane-join etcd --config /etc/vmlab/kubeadm.yaml" + patches) !=
                  std::string::npos,
              flag)
        << version;
    const auto init_docs = YAML::LoadAll(RenderKubeadmConfig(lab, primary, TestSecrets()));
    const auto join_doc = YAML::Load(RenderKubeadmConfig(lab, secondary, TestSecrets()));
    if (flag) {
      EXPECT_FALSE(init_docs[0]["patches"]) << "v1beta2 has no patches field";
      EXPECT_FALSE(join_doc["patches"]);
    } else {
      EXPECT_EQ(init_docs[0]["patches"]["directory"].as<std::string>(),
                "/etc/vmlab/kubeadm-patches");
      EXPECT_EQ(join_doc["patches"]["directory"].as<std::string>(), "/etc/vmlab/kubeadm-patches");
    }
    EXPECT_FALSE(FilesByPath(lab, worker, TestSecrets()).contains("/etc/vmlab/kubeadm-patches/etcd.yaml"));
    EXPECT_THAT(RenderPhaseScript(Phase::kWorker, lab, worker, {}), Not(HasSubstr("patches")));
    EXPECT_FALSE(YAML::Load(RenderKubeadmConfig(lab, worker, TestSecrets()))["patches"]);
  }
}

// cni: bridge: each node's /24 at its host number, a conflist that parses as
// JSON, routes to every other node slot, a unit systemd accepts, and no
// manifest applied by the primary.
TEST(BootstrapTest, BridgeCniGivesEveryNodeItsSubnetAndRoutesToTheOthers) {
  const auto lab = OldBridgeLab();
  const auto nodes = crds::PlanNodes(lab);
  ScratchDir dir;
  const std::string d = dir.path().string();
  for (const auto& [node, subnet] :
       {std::pair{nodes[0], "10.217.11.0/24"}, std::pair{nodes[1], "10.217.101.0/24"}}) {
    SCOPED_TRACE(node.name);
    const auto files = FilesByPath(lab, node, TestSecrets());
    dir.Write("conflist.json", files.at(kBridgeConflistPath).content);
    const std::string parsed = Shell(
        "python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); b=c[\"plugins\"][0]; "
        "print(c[\"cniVersion\"], b[\"type\"], b[\"bridge\"], b[\"isGateway\"], "
        "b[\"ipMasq\"], b[\"hairpinMode\"], b[\"ipam\"][\"type\"], "
        "b[\"ipam\"][\"ranges\"][0][0][\"subnet\"], b[\"ipam\"][\"routes\"][0][\"dst\"], "
        "c[\"plugins\"][1][\"type\"], c[\"plugins\"][1][\"capabilities\"][\"portMappings\"])' " +
        d + "/conflist.json");
    EXPECT_EQ(parsed, fmt::format("0.4.0 bridge cni0 True True True host-local {} 0.0.0.0/0 "
                                  "portmap True\n",
                                  subnet));
    const std::string routes = files.at(kPodRoutesScriptPath).content;
    EXPECT_THAT(routes, Not(HasSubstr(std::string(subnet) + " via")))
        << "no route to its own subnet (the bridge has it)";
    for (const char* other :
         {"10.217.12.0/24 via 172.42.42.12 dev eth0", "10.217.17.0/24 via 172.42.42.17 dev eth0",
          "10.217.103.0/24 via 172.42.42.103 dev eth0",
          "10.217.250.0/24 via 172.42.42.250 dev eth0"}) {
      EXPECT_THAT(routes, HasSubstr(std::string("ip route replace ") + other + "\n"))
          << "every slot, nodes of a later scale-up too";
    }
    EXPECT_THAT(routes, Not(HasSubstr("10.217.18.0/24"))) << "7 control planes at most";
    EXPECT_THAT(routes, Not(HasSubstr("10.217.251.0/24"))) << "150 workers at most";
    EXPECT_EQ(std::count(routes.begin(), routes.end(), '\n') - 5, 7 + 150 - 1);
    const std::string base = files.at("/etc/vmlab/phases/base.sh").content;
    EXPECT_THAT(base, HasSubstr("systemctl enable vmlab-pod-routes.service"));
    EXPECT_THAT(base, HasSubstr("containernetworking-plugins"));
  }
  dir.Write("vmlab-pod-routes.service", RenderPodRoutesUnit());
  int status = 0;
  const std::string verify =
      Shell("systemd-analyze verify --man=no " + d + "/vmlab-pod-routes.service 2>&1", &status);
  EXPECT_EQ(status, 0) << verify;
  EXPECT_THAT(RenderPodRoutesUnit(), HasSubstr("WantedBy=multi-user.target"));
  EXPECT_THAT(RenderPodRoutesUnit(), HasSubstr("After=network-online.target"));
  dir.Write("broken.service", "[Service]\nType=oneshot\nExecStart=relative/path\n");
  (void)Shell("systemd-analyze verify --man=no " + d + "/broken.service >/dev/null 2>&1", &status);
  EXPECT_NE(status, 0) << "systemd-analyze does reject a broken unit";

  const std::string primary = RenderPhaseScript(Phase::kPrimary, lab, nodes[0], {});
  EXPECT_THAT(primary, HasSubstr("# No CNI manifest (spec.kubernetes.cni: bridge)"));
  EXPECT_THAT(primary, Not(HasSubstr("kubectl apply")));
  const auto spk = Load("examples/spk-lab.yaml");
  for (const auto& [path, file] : FilesByPath(spk, crds::PlanNodes(spk)[0], TestSecrets())) {
    EXPECT_THAT(path, Not(HasSubstr("pod-routes"))) << "calico labs get no bridge files";
    if (path == "/etc/vmlab/phases/base.sh") {
      EXPECT_THAT(file.content, Not(HasSubstr("vmlab-pod-routes")));
    }
  }
}

// Debian's CNI plugins (/usr/lib/cni) are linked where containerd looks
// (/opt/cni/bin); plugins there already are kept.
TEST(BootstrapTest, BasePhaseLinksDebianCniPluginsIntoOptCniBin) {
  const auto lab = OldBridgeLab();
  const std::string script = RenderPhaseScript(Phase::kBase, lab, crds::PlanNodes(lab)[0], {});
  const auto start = script.find("if [[ -e /usr/lib/cni/bridge");
  ASSERT_NE(start, std::string::npos);
  const auto end = script.find("\nfi\n", start);
  std::string snippet = script.substr(start, end + 4 - start);
  ScratchDir dir;
  const std::string d = dir.path().string();
  for (const auto& [from, to] : {std::pair{"/usr/lib/cni", "/debian"}, {"/opt/cni/bin", "/opt"}}) {
    for (auto at = snippet.find(from); at != std::string::npos; at = snippet.find(from, at)) {
      snippet.replace(at, std::string(from).size(), d + to);
    }
  }
  std::filesystem::create_directories(dir.path() / "debian");
  dir.Write("debian/bridge", "");
  dir.Write("debian/host-local", "");
  dir.Write("link.sh", "set -euo pipefail\n" + snippet);
  (void)Shell("bash " + d + "/link.sh");
  EXPECT_EQ(std::filesystem::read_symlink(dir.path() / "opt/bridge"), dir.path() / "debian/bridge");
  EXPECT_TRUE(std::filesystem::is_symlink(dir.path() / "opt/host-local"));
  (void)Shell("bash " + d + "/link.sh");  // again: nothing to do, no error
  EXPECT_TRUE(std::filesystem::is_symlink(dir.path() / "opt/bridge"));
}

TEST(BootstrapTest, RolesGetTheirPhasesAndOnlyControlPlanesTheCaKeys) {
  const auto lab = Load("examples/spk-lab.yaml");
  const auto nodes = crds::PlanNodes(lab);
  const auto names = [&](const crds::PlannedNode& node) {
    std::vector<std::string> out;
    for (const Phase p : PhasesFor(lab, node)) out.emplace_back(ToString(p));
    return out;
  };
  EXPECT_THAT(names(nodes[0]), testing::ElementsAre("base", "endpoint", "kubernetes", "primary"));
  EXPECT_THAT(names(nodes[1]), testing::ElementsAre("base", "endpoint", "kubernetes", "secondary"));
  EXPECT_THAT(names(nodes[2]), testing::ElementsAre("base", "kubernetes", "worker"));
  const auto secondary = FilesByPath(lab, nodes[1], TestSecrets());
  EXPECT_EQ(secondary.at("/etc/vmlab/pki/ca.key").permissions, "0600");
  EXPECT_EQ(secondary.at("/etc/vmlab/pki/etcd/ca.key").content, TestSecrets().etcd_ca.key_pem);
  EXPECT_EQ(secondary.at("/etc/vmlab/pki/ca.crt").permissions, "0644");
  EXPECT_EQ(secondary.at("/etc/vmlab/keepalived.conf").permissions, "0600");
  const auto worker = FilesByPath(lab, nodes[2], TestSecrets());
  for (const auto& [path, file] : worker) {
    EXPECT_FALSE(path.starts_with("/etc/vmlab/pki")) << "workers get no CA material: " << path;
    EXPECT_THAT(file.content, Not(HasSubstr("PRIVATE KEY"))) << path;
  }
  EXPECT_EQ(worker.at("/etc/vmlab/kubeadm.yaml").permissions, "0600") << "it holds the token";
}

// A failed join is reset and tried again; `kubeadm reset` deletes
// /etc/kubernetes/pki, so each attempt copies the lab's CAs in from the seed
// first (found on a real 1.20.2 HA lab: the retried join made a CA of its own
// and every later attempt failed with "certificate signed by unknown
// authority").
TEST(BootstrapTest, EveryJoinAttemptOfAControlPlanePlacesTheLabsCas) {
  const auto lab = Load("examples/spk-lab.yaml");
  const auto nodes = crds::PlanNodes(lab);
  const std::string secondary = RenderPhaseScript(Phase::kSecondary, lab, nodes[1], {});
  const auto attempt = secondary.find("attempt() {");
  const auto copy = secondary.find("cp -a /etc/vmlab/pki/. /etc/kubernetes/pki/");
  const auto join = secondary.find("kubeadm join");
  ASSERT_NE(attempt, std::string::npos);
  EXPECT_LT(attempt, copy) << "inside the retried function: " << secondary;
  EXPECT_LT(copy, join);
  const std::string primary = RenderPhaseScript(Phase::kPrimary, lab, nodes[0], {});
  EXPECT_LT(primary.find("cp -a /etc/vmlab/pki/."), primary.find("kubeadm init --config"));
  const auto worker_node = std::find_if(nodes.begin(), nodes.end(), [](const auto& n) {
    return n.role == crds::NodeRole::kWorker;
  });
  ASSERT_NE(worker_node, nodes.end());
  EXPECT_THAT(RenderPhaseScript(Phase::kWorker, lab, *worker_node, {}),
              Not(HasSubstr("/etc/vmlab/pki")));
}

// A control plane joins without costing etcd its quorum: kubeadm joins
// everything but etcd, the member is added as a learner through the other
// control planes, kubeadm's etcd step then finds it and writes the static pod,
// the helper names the member in that pod's --initial-cluster (kubeadm 1.20
// leaves a member that never ran unnamed), then kubeadm's last two steps, and
// the learner is promoted last (the helper itself runs against a real etcd in
// EtcdLearnerTest).
TEST(BootstrapTest, AJoiningControlPlaneAddsItsEtcdMemberAsALearnerFirst) {
  auto lab = Load("examples/spk-lab.yaml");
  lab.spec.control_plane.replicas = 3;
  const auto nodes = crds::PlanNodes(lab);
  const std::string secondary = RenderPhaseScript(Phase::kSecondary, lab, nodes[2], {});
  const std::vector<std::string> steps = {
      "kubeadm join --config /etc/vmlab/kubeadm.yaml --skip-phases=control-plane-join",
      "etcd-learner.py add https://172.42.42.13:2380 https://172.42.42.11:2379 https://172.42.42.12:2379\n",
      "kubeadm join phase control-plane-join etcd --config /etc/vmlab/kubeadm.yaml\n",
      "etcd-learner.py name https://172.42.42.13:2380\n",
      "kubeadm join phase control-plane-join update-status --config /etc/vmlab/kubeadm.yaml\n",
      "kubeadm join phase control-plane-join mark-control-plane --config /etc/vmlab/kubeadm.yaml\n",
      "etcd-learner.py promote https://172.42.42.13:2380 https://172.42.42.11:2379 https://172.42.42.12:2379\n"};
  std::size_t at = 0;
  for (const auto& step : steps) {
    const auto found = secondary.find(step, at);
    ASSERT_NE(found, std::string::npos) << "missing or out of order: " << step << "\n" << secondary;
    at = found + step.size();
  }
  EXPECT_THAT(secondary, Not(HasSubstr("control-plane-join all"))) << "the steps run one by one";
  const auto worker = std::find_if(nodes.begin(), nodes.end(),
                                   [](const auto& n) { return n.role == crds::NodeRole::kWorker; });
  ASSERT_NE(worker, nodes.end());
  EXPECT_THAT(RenderPhaseScript(Phase::kWorker, lab, *worker, {}), Not(HasSubstr("etcd-learner")));
  const auto secrets = MakeLabSecrets(lab, {}).value();
  EXPECT_TRUE(FilesByPath(lab, nodes[2], secrets).contains("/etc/vmlab/etcd-learner.py"));
  EXPECT_FALSE(FilesByPath(lab, nodes[0], secrets).contains("/etc/vmlab/etcd-learner.py"))
      << "the primary joins nothing";
  EXPECT_FALSE(FilesByPath(lab, *worker, secrets).contains("/etc/vmlab/etcd-learner.py"));
}

TEST(BootstrapTest, HostsBlockListsTheEndpointAndEveryNodeBeyondNineWorkers) {
  auto lab = BigLab();
  lab.spec.workers.replicas = 12;
  const std::string hosts = RenderHostsBlock(lab);
  EXPECT_THAT(hosts, HasSubstr("10.20.0.10 bigapi.big.lab bigapi\n"));
  EXPECT_THAT(hosts, HasSubstr("10.20.0.112 big-worker-12.big.lab big-worker-12\n"));
  EXPECT_TRUE(hosts.starts_with("# BEGIN vmlab\n") && hosts.ends_with("# END vmlab\n"));
}

TEST(BootstrapTest, PrimaryAppliesTheCniThenTheAddonsInOrder) {
  const auto lab = BigLab();
  const auto files = FilesByPath(lab, crds::PlanNodes(lab)[0], TestSecrets());
  const std::string& primary = files.at("/etc/vmlab/phases/primary.sh").content;
  const auto cilium = primary.find(std::string("cilium install --version ") + kCiliumVersion);
  const auto cert_manager = primary.find("cert-manager.yaml'");
  const auto openebs = primary.find("kubectl apply -f '/etc/vmlab/manifests/addon-2.yaml'");
  ASSERT_NE(cilium, std::string::npos) << primary;
  ASSERT_NE(cert_manager, std::string::npos);
  ASSERT_NE(openebs, std::string::npos);
  EXPECT_LT(cilium, cert_manager);
  EXPECT_LT(cert_manager, openebs);
  EXPECT_EQ(files.at("/etc/vmlab/manifests/addon-2.yaml").content,
            "apiVersion: v1\nkind: Namespace\n")
      << "a host manifest travels in the seed";
  const auto calico = Load("examples/spk-lab.yaml");
  const auto calico_files = FilesByPath(calico, crds::PlanNodes(calico)[0], TestSecrets());
  EXPECT_THAT(calico_files.at("/etc/vmlab/phases/primary.sh").content,
              HasSubstr(std::string("kubectl apply -f '") + kCalicoManifest + "'"));
}

TEST(BootstrapTest, BasePhasePinsKubernetesPackagesFromTheMinorsRepository) {
  const auto lab = Load("examples/spk-lab.yaml");
  const std::string base = RenderPhaseScript(Phase::kBase, lab, crds::PlanNodes(lab)[0], {}) +
                           RenderPhaseScript(Phase::kKubernetes, lab, crds::PlanNodes(lab)[0], {});
  const std::string minor =
      lab.spec.kubernetes.version.substr(0, lab.spec.kubernetes.version.rfind('.'));
  EXPECT_THAT(base, HasSubstr("https://pkgs.k8s.io/core:/stable:/v" + minor + "/deb/"));
  EXPECT_THAT(base, HasSubstr("-v want=" + lab.spec.kubernetes.version + "-"));
  EXPECT_THAT(base, HasSubstr("apt-mark hold kubelet kubeadm kubectl"));
  EXPECT_THAT(base, HasSubstr("SystemdCgroup = true"));
  EXPECT_THAT(base, HasSubstr("systemctl enable --now iscsid"));
  EXPECT_THAT(base, HasSubstr("rm -f /etc/apt/apt.conf.d/90vmlab-proxy"));
  EXPECT_THAT(base, Not(HasSubstr("docker"))) << "no Docker-era runtime";
  NodeEnvironment env;
  env.apt_proxy = "http://172.42.42.1:3142";
  EXPECT_THAT(
      RenderPhaseScript(Phase::kBase, lab, crds::PlanNodes(lab)[0], env),
      HasSubstr("install -m 0644 /etc/vmlab/apt-proxy.conf /etc/apt/apt.conf.d/90vmlab-proxy"));
}

// Registry mirrors reach the node as containerd hosts.toml files, one per
// upstream (registry_mirrors_test has the real containerd pull with them).
TEST(BootstrapTest, RegistryMirrorsAreHostsTomlFiles) {
  const auto lab = Load("examples/spk-lab.yaml");
  const auto node = crds::PlanNodes(lab)[1];
  NodeEnvironment env;
  env.registry_mirrors = {{"docker.io", "http://172.42.42.1:5002"},
                          {"registry.k8s.io", "http://172.42.42.1:5001"}};
  std::map<std::string, std::string> hosts;
  for (const auto& file : NodeFiles(lab, node, Redacted(MakeLabSecrets(lab, {}).value()), env)) {
    if (file.path.starts_with("/etc/containerd/certs.d/")) hosts[file.path] = file.content;
  }
  ASSERT_EQ(hosts.size(), 2u);
  const std::string docker = hosts["/etc/containerd/certs.d/docker.io/hosts.toml"];
  EXPECT_THAT(docker, HasSubstr("server = \"https://registry-1.docker.io\""));
  EXPECT_THAT(docker, HasSubstr("[host.\"http://172.42.42.1:5002\"]"));
  EXPECT_THAT(hosts["/etc/containerd/certs.d/registry.k8s.io/hosts.toml"],
              HasSubstr("server = \"https://registry.k8s.io\""));
  EXPECT_THAT(RenderPhaseScript(Phase::kBase, lab, node, env),
              HasSubstr("config_path = \"/etc/containerd/certs.d\""))
      << "containerd's CRI reads them";
}

// apt through the lab's cache, checked by apt itself: the proxy file parses,
// and the Kubernetes repository is reached as http://HTTPS///... (the
// cache's https remapping) while the key still comes over https.
TEST(BootstrapTest, AptThroughTheCacheIsWhatAptReads) {
  const auto lab = Load("examples/spk-lab.yaml");
  const auto node = crds::PlanNodes(lab)[0];
  NodeEnvironment env;
  env.apt_proxy = "http://172.42.42.1:3142";
  // Another proxy (not apt-cacher-ng) reaches https repositories with CONNECT.
  EXPECT_THAT(RenderPhaseScript(Phase::kKubernetes, lab, node, env),
              HasSubstr("asc] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /"));
  env.apt_https_remap = true;
  ScratchDir dir;
  const std::string d = dir.path().string();
  std::string config;
  for (const auto& file : NodeFiles(lab, node, Redacted(MakeLabSecrets(lab, {}).value()), env)) {
    if (file.path == "/etc/vmlab/apt-proxy.conf") config = file.content;
  }
  ASSERT_FALSE(config.empty()) << "the seed carries the proxy configuration";
  dir.Write("proxy.conf", config);
  EXPECT_EQ(Shell("APT_CONFIG=/dev/null apt-config -c " + d +
                  "/proxy.conf dump Acquire::http::Proxy 2>/dev/null"),
            "Acquire::http::Proxy \"http://172.42.42.1:3142\";\n");
  dir.Write("broken.conf", "Acquire::http::Proxy \"http://x:3142\"\n");  // no semicolon
  int status = 0;
  (void)Shell("APT_CONFIG=/dev/null apt-config -c " + d + "/broken.conf dump >/dev/null 2>&1",
              &status);
  EXPECT_NE(status, 0) << "apt-config does reject a malformed file";

  const std::string script = RenderPhaseScript(Phase::kKubernetes, lab, node, env);
  const auto start = script.find("echo 'deb ");
  ASSERT_NE(start, std::string::npos);
  const auto end = script.find("' \\", start);
  std::string line = script.substr(start + 6, end - start - 6);
  EXPECT_THAT(script, HasSubstr("https://pkgs.k8s.io/core:/stable:/v1.30/deb/Release.key"));
  line.replace(line.find("/etc/apt/keyrings/kubernetes-apt-keyring.asc"),
               std::string("/etc/apt/keyrings/kubernetes-apt-keyring.asc").size(), d + "/key.asc");
  for (const char* sub :
       {"etc/apt.conf.d", "etc/sources.list.d", "state/lists/partial", "cache/archives/partial"}) {
    std::filesystem::create_directories(dir.path() / sub);
  }
  dir.Write("etc/sources.list", "");
  dir.Write("etc/sources.list.d/kubernetes.list", line + "\n");
  dir.Write("etc/apt.conf.d/90vmlab-proxy", config);
  dir.Write("key.asc", "");
  const std::string uris = Shell(fmt::format(
      "APT_CONFIG=/dev/null apt-get -o Dir::Etc={d}/etc -o Dir::Etc::parts={d}/etc/apt.conf.d "
      "-o Dir::State={d}/state -o Dir::Cache={d}/cache -o Debug::NoLocking=1 --print-uris "
      "update 2>/dev/null",
      fmt::arg("d", d)));
  EXPECT_THAT(uris, HasSubstr("'http://HTTPS///pkgs.k8s.io/core:/stable:/v1.30/deb/InRelease'"));
}

// The base phase's edits of containerd's default configuration, run on the
// real containerd's default and read back by its own parser.
class ContainerdConfigTest : public testing::TestWithParam<std::pair<const char*, const char*>> {};

TEST_P(ContainerdConfigTest, ContainerdConfigurationIsWhatContainerdReads) {
  const auto lab = WithVersion(Load("examples/spk-lab.yaml"), GetParam().first);
  const std::string script = RenderPhaseScript(Phase::kBase, lab, crds::PlanNodes(lab)[0], {});
  const auto start = script.find("containerd config default >/etc/containerd/config.toml");
  const auto end = script.find("systemctl enable containerd");
  ASSERT_NE(start, std::string::npos);
  ASSERT_NE(end, std::string::npos);
  std::string edits = script.substr(start, end - start);
  ScratchDir dir;
  const std::string file = (dir.path() / "config.toml").string();
  for (auto at = edits.find("/etc/containerd/config.toml"); at != std::string::npos;
       at = edits.find("/etc/containerd/config.toml", at + file.size())) {
    edits.replace(at, std::string("/etc/containerd/config.toml").size(), file);
  }
  dir.Write("edit.sh", "set -euo pipefail\n" + edits);
  (void)Shell("bash " + (dir.path() / "edit.sh").string());
  const std::string dump = Shell("containerd --config " + file + " config dump 2>&1");
  EXPECT_THAT(dump, HasSubstr("SystemdCgroup = true"));
  EXPECT_THAT(dump, HasSubstr("config_path = \"/etc/containerd/certs.d\""));
  EXPECT_THAT(dump, HasSubstr(fmt::format("sandbox_image = \"registry.k8s.io/pause:{}\"",
                                          GetParam().second)))
      << "the pause image kubeadm " << GetParam().first << " expects";
}

INSTANTIATE_TEST_SUITE_P(PauseImages, ContainerdConfigTest,
                         testing::Values(std::pair{"1.20.2", "3.2"}, std::pair{"1.21.14", "3.4.1"},
                                         std::pair{"1.22.17", "3.5"}, std::pair{"1.23.17", "3.6"},
                                         std::pair{"1.24.17", "3.7"}, std::pair{"1.25.16", "3.8"},
                                         std::pair{"1.30.4", "3.9"}, std::pair{"1.31.2", "3.10"}),
                         [](const auto& param) { return "case" + std::to_string(param.index); });

TEST(BootstrapTest, RedactedSecretsLeaveNoKeyTokenOrPasswordInTheUserData) {
  const auto lab = Load("examples/spk-lab.yaml");
  const auto secrets = MakeLabSecrets(lab, std::chrono::system_clock::now());
  ASSERT_TRUE(secrets);
  for (const auto& node : crds::PlanNodes(lab)) {
    const std::string text = RenderUserData(lab, node, Redacted(*secrets), {});
    EXPECT_THAT(text, Not(HasSubstr("BEGIN PRIVATE KEY")));
    EXPECT_THAT(text, Not(HasSubstr(secrets->token)));
    EXPECT_THAT(text, Not(HasSubstr(secrets->token.substr(7))));
    EXPECT_THAT(text, Not(HasSubstr("auth_pass " + secrets->vrrp_password)));
  }
}

}  // namespace
}  // namespace vmlab::reconcilers::bootstrap
