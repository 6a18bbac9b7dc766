// Package and image sets derived from the spec: per role, per Kubernetes
// version (kubeadm's image table), per CNI, and from the CNI and add-on
// manifests the spec gives as host files; the phase scripts install exactly
// the derived packages.
#include "reconcilers/cache/cache_sets.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fixtures.h"
#include "reconcilers/bootstrap/node_config.h"

namespace vmlab::reconcilers::cache {
namespace {

using crds::NodeRole;
using testing::ElementsAre;
using testing::HasSubstr;
using testing::IsEmpty;

crds::LabCluster Lab(const std::string& version, const std::string& extra = "") {
  return testing_support::ParseLab(
      "lab.yaml",
      fmt::format("apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata: {{name: sets}}\n"
                  "spec:\n  kubernetes:\n    version: \"{}\"\n{}  network: {{cidr: "
                  "172.31.9.0/24}}\n",
                  version, extra));
}

std::vector<std::string> Names(const std::vector<Package>& set) {
  std::vector<std::string> out;
  for (const auto& p : set) {
    out.push_back(p.name + (p.version.empty() ? "" : "=" + p.version) +
                  (p.source == PackageSource::kKubernetes ? " (pkgs.k8s.io)" : ""));
  }
  return out;
}

TEST(CacheSetsTest, PackagesByRoleArePinnedAndMatchThePhaseScripts) {
  const auto lab = Lab("1.30.4");
  EXPECT_THAT(Names(PackageSet(lab, NodeRole::kWorker)),
              ElementsAre("ca-certificates", "containerd", "curl", "open-iscsi", "procps",
                          "kubeadm=1.30.4 (pkgs.k8s.io)", "kubectl=1.30.4 (pkgs.k8s.io)",
                          "kubelet=1.30.4 (pkgs.k8s.io)"));
  const auto cp = Names(PackageSet(lab, NodeRole::kControlPlane));
  EXPECT_THAT(cp, testing::Contains("haproxy"));
  EXPECT_THAT(cp, testing::Contains("keepalived"));
  EXPECT_EQ(cp.size(), 10u);

  // The scripts install what the sets say (the seed lab's scripts disagreed).
  const auto nodes = crds::PlanNodes(lab);
  const auto base = bootstrap::RenderPhaseScript(bootstrap::Phase::kBase, lab, nodes.front(), {});
  EXPECT_THAT(base, HasSubstr("for package in ca-certificates curl containerd open-iscsi procps;"));
  const auto endpoint =
      bootstrap::RenderPhaseScript(bootstrap::Phase::kEndpoint, lab, nodes.front(), {});
  EXPECT_THAT(endpoint, HasSubstr("--no-install-recommends haproxy keepalived"));
  const auto kubernetes =
      bootstrap::RenderPhaseScript(bootstrap::Phase::kKubernetes, lab, nodes.front(), {});
  for (const auto& name : KubernetesPackages()) {
    EXPECT_THAT(kubernetes, HasSubstr(fmt::format("\"{}=$version\"", name)));
  }
}

TEST(CacheSetsTest, KubeadmImagesFollowTheRelease) {
  struct Case {
    const char* version;
    const char* etcd;
    const char* coredns;
    const char* pause;
  };
  for (const Case& c :
       {Case{"1.24.0", "3.5.3-0", "v1.8.6", "3.7"}, Case{"1.24.17", "3.5.6-0", "v1.8.6", "3.7"},
        Case{"1.25.4", "3.5.5-0", "v1.9.3", "3.8"}, Case{"1.27.6", "3.5.7-0", "v1.10.1", "3.9"},
        Case{"1.28.14", "3.5.15-0", "v1.10.1", "3.9"}, Case{"1.30.4", "3.5.12-0", "v1.11.1", "3.9"},
        Case{"1.30.5", "3.5.15-0", "v1.11.3", "3.9"}, Case{"1.31.0", "3.5.15-0", "v1.11.1", "3.10"},
        Case{"1.31.2", "3.5.15-0", "v1.11.3", "3.10"},
        Case{"1.32.3", "3.5.16-0", "v1.11.3", "3.10"}}) {
    const auto images = KubeadmImagesFor(c.version);
    ASSERT_TRUE(images) << c.version;
    EXPECT_EQ(images->etcd, c.etcd) << c.version;
    EXPECT_EQ(images->coredns, c.coredns) << c.version;
    EXPECT_EQ(images->pause, c.pause) << c.version;
  }
  EXPECT_FALSE(KubeadmImagesFor("1.33.0")) << "past the table";
  EXPECT_FALSE(KubeadmImagesFor("1.23.17")) << "before vmlab's table";
  EXPECT_EQ(PauseImage("1.20.2"), "registry.k8s.io/pause:3.2");
  EXPECT_EQ(PauseImage("1.21.0"), "registry.k8s.io/pause:3.4.1");
  EXPECT_EQ(PauseImage("1.29.1"), "registry.k8s.io/pause:3.9");
  EXPECT_EQ(PauseImage("1.33.0"), "registry.k8s.io/pause:3.10") << "the newest past the table";
  EXPECT_FALSE(KubeadmImagesFor("2.0.0"));
}

TEST(CacheSetsTest, ImagesByRoleAndCni) {
  const auto lab = Lab("1.30.4");
  const auto cp = ImagesFor(lab, NodeRole::kControlPlane, {});
  EXPECT_THAT(
      cp.images,
      ElementsAre("docker.io/calico/cni:v3.28.1", "docker.io/calico/kube-controllers:v3.28.1",
                  "docker.io/calico/node:v3.28.1", "registry.k8s.io/coredns/coredns:v1.11.1",
                  "registry.k8s.io/etcd:3.5.12-0", "registry.k8s.io/kube-apiserver:v1.30.4",
                  "registry.k8s.io/kube-controller-manager:v1.30.4",
                  "registry.k8s.io/kube-proxy:v1.30.4", "registry.k8s.io/kube-scheduler:v1.30.4",
                  "registry.k8s.io/pause:3.9"));
  EXPECT_THAT(cp.notes, IsEmpty());
  const auto worker = ImagesFor(lab, NodeRole::kWorker, {});
  EXPECT_THAT(
      worker.images,
      ElementsAre("docker.io/calico/cni:v3.28.1", "docker.io/calico/kube-controllers:v3.28.1",
                  "docker.io/calico/node:v3.28.1", "registry.k8s.io/kube-proxy:v1.30.4",
                  "registry.k8s.io/pause:3.9"));

  const auto cilium = ImagesFor(Lab("1.31.2", "    cni: cilium\n"), NodeRole::kWorker, {});
  EXPECT_TRUE(cilium.images.contains("quay.io/cilium/cilium:v1.16.1"));
  EXPECT_TRUE(cilium.images.contains("registry.k8s.io/pause:3.10"));
  EXPECT_FALSE(cilium.images.contains("docker.io/calico/node:v3.28.1"));
  EXPECT_THAT(cilium.notes, ElementsAre(HasSubstr("Envoy")));

  const auto none = ImagesFor(Lab("1.33.1", "    cni: none\n"), NodeRole::kControlPlane, {});
  EXPECT_TRUE(none.images.contains("registry.k8s.io/kube-apiserver:v1.33.1"));
  EXPECT_TRUE(none.images.contains("registry.k8s.io/pause:3.10"))
      << "the newest known pause image: the one containerd is configured with";
  EXPECT_THAT(none.notes, ElementsAre(HasSubstr("not in vmlab's table")));
}

TEST(CacheSetsTest, ImagesNamedInHostManifests) {
  const std::string cni = R"(apiVersion: apps/v1
kind: DaemonSet
metadata: {name: flannel}
spec:
  template:
    spec:
      initContainers:
      - {name: install, image: docker.io/flannel/flannel-cni-plugin:v1.5.1-flannel2}
      containers:
      - name: flannel
        image: flannel/flannel:v0.25.6
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-an-image}
data: {image: "ignored:1"}
---
apiVersion: batch/v1
kind: CronJob
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: c, image: busybox}]
)";
  const auto lab = Lab("1.30.4",
                       "    cniManifest: /srv/cni.yaml\n"
                       "  addons: [/srv/broken.yaml, https://example.invalid/addon.yaml]\n");
  const auto set = ImagesFor(lab, NodeRole::kWorker,
                             {{"/srv/cni.yaml", cni}, {"/srv/broken.yaml", "a: [unclosed\n"}});
  EXPECT_TRUE(set.images.contains("docker.io/flannel/flannel-cni-plugin:v1.5.1-flannel2"));
  EXPECT_TRUE(set.images.contains("docker.io/flannel/flannel:v0.25.6"));
  EXPECT_TRUE(set.images.contains("docker.io/library/busybox:latest"));
  EXPECT_FALSE(set.images.contains("docker.io/library/ignored:1"));
  EXPECT_THAT(set.notes, ElementsAre(HasSubstr("the add-on /srv/broken.yaml: document 1"),
                                     HasSubstr("https://example.invalid/addon.yaml is fetched by "
                                               "the node")));
}

TEST(CacheSetsTest, GoldenImageKeyFollowsWhatGoesIntoTheImageOnly) {
  const std::string base = "/var/lib/vmlab/images/debian-12.qcow2 2147483648 1764115200";
  const auto key = GoldenImageKey(Lab("1.30.4"), {}, base);
  EXPECT_EQ(key.size(), 64u);
  EXPECT_EQ(GoldenImageKey(Lab("1.30.4"), {}, base), key) << "stable";
  // Name, network and counts do not matter.
  const auto other = testing_support::ParseLab(
      "other.yaml",
      "apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata: {name: other}\nspec:\n"
      "  kubernetes: {version: \"1.30.4\"}\n  network: {cidr: 10.9.0.0/24}\n"
      "  controlPlane: {replicas: 3}\n  workers: {replicas: 7, cpus: 4}\n");
  EXPECT_EQ(GoldenImageKey(other, {}, base), key) << "shared by labs with the same inputs";
  // What goes into the image does.
  EXPECT_NE(GoldenImageKey(Lab("1.30.5"), {}, base), key) << "Kubernetes version";
  EXPECT_NE(GoldenImageKey(Lab("1.30.4", "    cni: cilium\n"), {}, base), key) << "CNI images";
  EXPECT_NE(GoldenImageKey(Lab("1.30.4"), {}, base + "1"), key) << "base image";
  const auto small_workers = testing_support::ParseLab(
      "small.yaml",
      "apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata: {name: small}\nspec:\n"
      "  kubernetes: {version: \"1.30.4\"}\n  workers: {replicas: 2, diskGiB: 10}\n");
  EXPECT_EQ(GoldenDiskGiB(small_workers), 10);
  EXPECT_NE(GoldenImageKey(small_workers, {}, base), key)
      << "the disk size it is built at (its filesystem grows to it)";
  const auto with_addon = Lab("1.30.4", "  addons: [/srv/addon.yaml]\n");
  const std::string addon_v1 =
      "apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: a, image: busybox:1.36}]\n";
  const std::string addon_v2 =
      "apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: a, image: busybox:1.37}]\n";
  EXPECT_NE(GoldenImageKey(with_addon, {{"/srv/addon.yaml", addon_v1}}, base),
            GoldenImageKey(with_addon, {{"/srv/addon.yaml", addon_v2}}, base))
      << "an image named in an add-on manifest";
}

TEST(CacheSetsTest, ReferencesAreNormalisedAsContainerdNamesThem) {
  EXPECT_EQ(NormalizeImage("nginx"), "docker.io/library/nginx:latest");
  EXPECT_EQ(NormalizeImage("user/app:1.2"), "docker.io/user/app:1.2");
  EXPECT_EQ(NormalizeImage("localhost:5000/app"), "localhost:5000/app:latest");
  EXPECT_EQ(NormalizeImage("registry.k8s.io/pause:3.9"), "registry.k8s.io/pause:3.9");
  EXPECT_EQ(NormalizeImage("quay.io/a/b@sha256:abc"), "quay.io/a/b@sha256:abc");
  EXPECT_EQ(NormalizeImage("registry:5000/team/app:v1"), "registry:5000/team/app:v1");
  EXPECT_EQ(RegistryOf("docker.io/library/nginx:latest"), "docker.io");
}

}  // namespace
}  // namespace vmlab::reconcilers::cache
