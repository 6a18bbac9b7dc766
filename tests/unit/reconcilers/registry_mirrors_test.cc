// The managed registry mirrors: the real docker-registry in proxy mode,
// started and supervised by RegistryMirrors, relayed from loopback addresses
// standing in for lab gateways, in front of a plain docker-registry on
// loopback playing the upstream (nothing leaves the machine). A private
// containerd pulls through the mirror with the hosts.toml nodes get (its own
// parser reads it; with no network, a pull that did not use the mirror
// fails), skopeo plays the second node. Hits and misses come from the
// mirror's own log.
#include "reconcilers/cache/registry_mirrors.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <thread>

#include "../controller/scratch_dir.h"
#include "fixtures.h"
#include "metrics/cache_metrics.h"
#include "metrics/registry.h"
#include "reconcilers/bootstrap/node_config.h"
#include "reconcilers/cache/image_warmer.h"
#include "shell.h"

namespace vmlab::reconcilers::cache {
namespace {

using testing::HasSubstr;
using testing::IsEmpty;
using testing_support::ScratchDir;
using testing_support::Shell;

bool PortFree(const char* address, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  inet_pton(AF_INET, address, &local.sin_addr);
  local.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool free = bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) == 0;
  close(fd);
  return free;
}

// The first of `count` consecutive ports free on loopback.
int FreePorts(int count) {
  static int next = 20000 + static_cast<int>(std::random_device{}() % 11000);
  for (int tries = 0; tries < 2000; ++tries) {
    const int port = next;
    next += count;
    if (next >= 32000) next = 20000;
    bool free = true;
    for (int i = 0; i < count; ++i) {
      free = free && PortFree("127.0.0.1", port + i) && PortFree("127.0.0.2", port + i) &&
             PortFree("127.0.0.3", port + i);
    }
    if (free) return port;
  }
  ADD_FAILURE() << "no free ports";
  return 0;
}

bool Connects(const char* address, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  inet_pton(AF_INET, address, &remote.sin_addr);
  remote.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof(remote)) == 0;
  close(fd);
  return ok;
}

bool WaitFor(const std::function<bool()>& done, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

class RegistryMirrorsTest : public testing::Test {
 protected:
  void SetUp() override {
    const std::string d = dir_.path().string();
    std::filesystem::create_directories(dir_.path() / "images");
    Shell(fmt::format(
        "{} {}/images",
        (testing_support::kSourceDir / "tests/fixtures/images/make_archives.sh").string(), d));
    upstream_port_ = FreePorts(1);
    std::filesystem::create_directories(dir_.path() / "images");
    std::ofstream(dir_.path() / "upstream.yml") << fmt::format(
        "version: 0.1\nlog: {{level: info, formatter: text}}\n"
        "storage: {{filesystem: {{rootdirectory: {}/upstream}}}}\n"
        "http: {{addr: 127.0.0.1:{}}}\n",
        d, upstream_port_);
    Shell(
        fmt::format("docker-registry serve {d}/upstream.yml >{d}/upstream.log 2>&1 & "
                    "echo $! >{d}/upstream.pid",
                    fmt::arg("d", d)));
    upstream_pid_ = std::stoi(testing_support::ReadFile(dir_.path() / "upstream.pid"));
    Shell(
        fmt::format("for i in $(seq 100); do curl -fs http://127.0.0.1:{}/v2/ >/dev/null && "
                    "exit 0; sleep 0.1; done; exit 1",
                    upstream_port_));
    // The image users pull from docker.io, here pushed to the stand-in upstream.
    Shell(fmt::format(
        "skopeo copy -q --dest-tls-verify=false docker-archive:{}/images/app-docker.tar "
        "docker://127.0.0.1:{}/library/app:1.0",
        d, upstream_port_));
    options_.mode = "managed";
    options_.state_dir = dir_.path() / "state";
    options_.port = FreePorts(3);
    options_.retry_after = std::chrono::milliseconds(0);
    const std::string upstream = fmt::format("http://127.0.0.1:{}", upstream_port_);
    options_.remotes = {{"registry.k8s.io", upstream},
                        {"docker.io", upstream},
                        // Nothing listens there: this mirror cannot start.
                        {"quay.io", fmt::format("http://127.0.0.1:{}", FreePorts(1))}};
  }
  void TearDown() override {
    if (containerd_pid_ != 0) kill(containerd_pid_, SIGTERM);
    kill(upstream_pid_, SIGTERM);
  }

  // A containerd of this test's own (root, state and socket in the scratch dir).
  std::string StartContainerd() {
    const std::string d = dir_.path().string();
    std::ofstream(dir_.path() / "containerd.toml") << fmt::format(
        "version = 2\nroot = \"{d}/containerd/root\"\nstate = \"{d}/containerd/state\"\n"
        "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
        "[grpc]\n  address = \"{d}/containerd/sock\"\n",
        fmt::arg("d", d));
    Shell(
        fmt::format("containerd --config {d}/containerd.toml >{d}/containerd.log 2>&1 & "
                    "echo $! >{d}/containerd.pid",
                    fmt::arg("d", d)));
    containerd_pid_ = std::stoi(testing_support::ReadFile(dir_.path() / "containerd.pid"));
    const std::string ctr = fmt::format("ctr --address {}/containerd/sock", d);
    Shell(
        fmt::format("for i in $(seq 100); do {} version >/dev/null 2>&1 && exit 0; sleep 0.1; "
                    "done; cat {}/containerd.log; exit 1",
                    ctr, d));
    return ctr;
  }

  // Blob downloads the upstream registry served.
  std::size_t UpstreamBlobGets() {
    std::size_t gets = 0;
    std::istringstream lines(testing_support::ReadFile(dir_.path() / "upstream.log"));
    for (std::string line; std::getline(lines, line);) {
      if (line.find("response completed") != std::string::npos &&
          line.find("http.request.method=GET") != std::string::npos &&
          line.find("/blobs/") != std::string::npos) {
        ++gets;
      }
    }
    return gets;
  }

  ScratchDir dir_;
  int upstream_port_ = 0;
  int upstream_pid_ = 0;
  int containerd_pid_ = 0;
  RegistryMirrorsOptions options_;
};

TEST_F(RegistryMirrorsTest, TheSecondNodeIsServedFromTheMirror) {
  metrics::Registry registry;
  metrics::CacheMetrics metrics(registry);
  RegistryMirrors mirrors(options_, &metrics);
  const auto served = mirrors.Serve("lab", "127.0.0.2");
  ASSERT_TRUE(served) << served.error().message;
  const std::string docker_io = fmt::format("http://127.0.0.2:{}", options_.port + 1);
  EXPECT_EQ(served->at("registry.k8s.io"), fmt::format("http://127.0.0.2:{}", options_.port));
  EXPECT_EQ(served->at("docker.io"), docker_io);
  EXPECT_EQ(served->at("quay.io"), fmt::format("http://127.0.0.2:{}", options_.port + 2));
  ASSERT_TRUE(WaitFor([&] { return mirrors.Serving("docker.io"); }, std::chrono::seconds(15)))
      << testing_support::ReadFile(mirrors.Root("docker.io") / "registry.log");
  EXPECT_FALSE(PortFree("127.0.0.2", options_.port + 1)) << "relayed on the gateway";
  EXPECT_TRUE(PortFree("127.0.0.1", options_.port + 1)) << "and on no other address";

  // The first node: containerd with the hosts.toml vmlab renders.
  const std::string ctr = StartContainerd();
  const auto hosts = dir_.path() / "certs.d";
  std::filesystem::create_directories(hosts / "docker.io");
  std::ofstream(hosts / "docker.io/hosts.toml")
      << bootstrap::RenderRegistryHosts("docker.io", docker_io);
  Shell(fmt::format("{} -n k8s.io content fetch --hosts-dir {} docker.io/library/app:1.0 2>&1", ctr,
                    hosts.string()));
  auto poll_until = [&](const std::function<bool(const RegistryTotals&)>& done) {
    RegistryTotals totals = mirrors.Poll();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (!done(totals) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      totals = mirrors.Poll();
    }
    return totals;
  };
  const auto first = poll_until([](const RegistryTotals& t) { return t.misses >= 2; });
  EXPECT_EQ(first.misses, 2u) << "config and layer came from upstream:\n"
                              << testing_support::ReadFile(mirrors.Root("docker.io") /
                                                           "registry.log");
  EXPECT_EQ(first.hits, 0u);

  // The second node pulls the same image: the upstream sees no blob request.
  const std::size_t upstream_before = UpstreamBlobGets();
  EXPECT_GE(upstream_before, 2u) << "the first pull reached the upstream";
  Shell(
      fmt::format("skopeo copy -q --src-tls-verify=false docker://127.0.0.2:{}/library/app:1.0 "
                  "oci:{}/second:app 2>&1",
                  options_.port + 1, dir_.path().string()));
  const auto second = poll_until([](const RegistryTotals& t) { return t.hits >= 2; });
  EXPECT_EQ(second.hits, 2u) << "config and layer came from the mirror's storage";
  EXPECT_EQ(second.misses, 2u);
  EXPECT_GT(second.served_bytes, 0u);
  EXPECT_EQ(UpstreamBlobGets(), upstream_before);

  const std::string text = registry.Serialize();
  EXPECT_EQ(
      testing_support::Metric(text, R"(vmlab_cache_requests_total{cache="images",result="hit"})"),
      2);
  EXPECT_EQ(
      testing_support::Metric(text, R"(vmlab_cache_requests_total{cache="images",result="miss"})"),
      2);
  EXPECT_GT(testing_support::Metric(text, R"(vmlab_cache_served_bytes_total{cache="images"})"), 0);
}

// Warming: the lab's images are fetched through its mirror ahead of the
// nodes; a node's pull is then all hits, and the upstream sees nothing more.
TEST_F(RegistryMirrorsTest, WarmingStoresTheLabsImagesBeforeTheNodesPull) {
  metrics::Registry registry;
  metrics::CacheMetrics metrics(registry);
  RegistryMirrors mirrors(options_, &metrics);
  ASSERT_TRUE(mirrors.Serve("lab", "127.0.0.2"));
  ASSERT_TRUE(WaitFor([&] { return mirrors.Serving("docker.io"); }, std::chrono::seconds(15)));
  mirrors.Warm("lab", {"docker.io/library/app:1.0", "docker.io/library/missing:1",
                       "ghcr.io/example/tool:1"});
  WarmStatus status;
  ASSERT_TRUE(WaitFor(
      [&] {
        status = mirrors.Warming("lab");
        return status.warmed + status.failed == 2;
      },
      std::chrono::seconds(30)));
  EXPECT_EQ(status.images, 3);
  EXPECT_EQ(status.warmed, 1);
  EXPECT_EQ(status.failed, 1);
  EXPECT_EQ(status.skipped, 1) << "ghcr.io is not mirrored";
  EXPECT_THAT(status.first_failure, HasSubstr("docker.io/library/missing:1"));
  const std::size_t upstream_before = UpstreamBlobGets();
  EXPECT_GE(upstream_before, 2u) << "warming fetched config and layer from upstream";
  // Warming again fetches nothing new.
  mirrors.Warm("lab", {"docker.io/library/app:1.0"});
  Shell(
      fmt::format("skopeo copy -q --src-tls-verify=false docker://127.0.0.2:{}/library/app:1.0 "
                  "oci:{}/node:app 2>&1",
                  options_.port + 1, dir_.path().string()));
  RegistryTotals totals = mirrors.Poll();
  for (int i = 0; i < 150 && totals.hits < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    totals = mirrors.Poll();
  }
  EXPECT_EQ(totals.hits, 2u) << "the node's blobs were all in the mirror";
  EXPECT_EQ(totals.misses, 2u) << "the misses were warming's";
  EXPECT_EQ(UpstreamBlobGets(), upstream_before);
  const std::string text = registry.Serialize();
  EXPECT_EQ(testing_support::Metric(
                text, R"(vmlab_cache_warmed_images_total{cache="images",result="warmed"})"),
            1);
  EXPECT_EQ(testing_support::Metric(
                text, R"(vmlab_cache_warmed_images_total{cache="images",result="failed"})"),
            1);
}

TEST_F(RegistryMirrorsTest, RelaysWhileALabNeedsItAndRestartsARegistryThatDies) {
  RegistryMirrors mirrors(options_, nullptr);
  ASSERT_TRUE(mirrors.Serve("a", "127.0.0.2"));
  ASSERT_TRUE(mirrors.Serve("b", "127.0.0.3"));
  ASSERT_TRUE(WaitFor([&] { return mirrors.Serving("docker.io"); }, std::chrono::seconds(15)));
  const std::string v2 = "curl -fsS --max-time 5 http://{}:{}/v2/";
  Shell(fmt::format(fmt::runtime(v2), "127.0.0.2", options_.port + 1));
  Shell(fmt::format(fmt::runtime(v2), "127.0.0.3", options_.port + 1));
  mirrors.Release("b");
  EXPECT_FALSE(Connects("127.0.0.3", options_.port + 1)) << "b's gateway is not relayed any more";
  EXPECT_TRUE(Connects("127.0.0.2", options_.port + 1));

  // quay.io's upstream cannot be reached: its mirror exits, is reported, and is retried.
  ASSERT_TRUE(
      WaitFor([&] { return mirrors.Problems().contains("quay.io"); }, std::chrono::seconds(15)));
  EXPECT_THAT(mirrors.Problems().at("quay.io"), HasSubstr("connection refused"));

  const pid_t victim = mirrors.Pid("docker.io");
  ASSERT_NE(victim, 0);
  kill(victim, SIGKILL);
  ASSERT_TRUE(
      WaitFor([&] { return mirrors.Pid("docker.io") != victim && mirrors.Serving("docker.io"); },
              std::chrono::seconds(15)))
      << "the supervisor started it again";
  Shell(fmt::format(fmt::runtime(v2), "127.0.0.2", options_.port + 1));
  const pid_t last = mirrors.Pid("docker.io");
  mirrors.Release("a");
  EXPECT_EQ(mirrors.Pid("docker.io"), 0) << "no lab needs it";
  EXPECT_EQ(kill(last, 0), -1);
  EXPECT_FALSE(Connects("127.0.0.2", options_.port + 1));
}

TEST(ImageWarmerTest, RepositoryAndReferenceAsTheRegistryApiNamesThem) {
  EXPECT_EQ(RepositoryAndReference("docker.io/calico/node:v3.28.1"),
            (std::pair<std::string, std::string>{"calico/node", "v3.28.1"}));
  EXPECT_EQ(RepositoryAndReference("registry.k8s.io/pause:3.9"),
            (std::pair<std::string, std::string>{"pause", "3.9"}));
  const std::string digest = "sha256:" + std::string(64, 'a');
  EXPECT_EQ(RepositoryAndReference("quay.io/cilium/cilium:v1.16.1@" + digest),
            (std::pair<std::string, std::string>{"cilium/cilium", digest}))
      << "tag and digest: the digest decides";
  EXPECT_EQ(RepositoryAndReference("quay.io/cilium/operator@" + digest),
            (std::pair<std::string, std::string>{"cilium/operator", digest}));
}

TEST_F(RegistryMirrorsTest, GivenMirrorsOffAndFailuresAreClear) {
  RegistryMirrorsOptions off;
  EXPECT_FALSE(RegistryMirrors(off, nullptr).Enabled());
  EXPECT_THAT(RegistryMirrors(off, nullptr).Serve("lab", "10.0.0.1").value(), IsEmpty());
  RegistryMirrorsOptions given;
  given.given = {{"docker.io", "http://mirror.example.internal:5000"}};
  RegistryMirrors given_only(given, nullptr);
  EXPECT_TRUE(given_only.Enabled());
  EXPECT_EQ(
      given_only.Serve("lab", "10.0.0.1").value(),
      (std::map<std::string, std::string>{{"docker.io", "http://mirror.example.internal:5000"}}));

  EXPECT_TRUE(CheckImageCacheMode("managed"));
  EXPECT_TRUE(CheckImageCacheMode("off"));
  EXPECT_FALSE(CheckImageCacheMode("http://x:5000"));
  const auto parsed = ParseUpstreamUrls({"docker.io=http://m:5000/", "quay.io=https://q"}, "--x");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->at("docker.io"), "http://m:5000");
  for (const char* bad :
       {"ghcr.io=http://m", "docker.io", "docker.io=ftp://m", "docker.io=http://m\"x"}) {
    const auto refused = ParseUpstreamUrls({bad}, "--registry-mirror");
    ASSERT_FALSE(refused) << bad;
    EXPECT_THAT(refused.error().message, HasSubstr("--registry-mirror"));
  }

  options_.binary = "/nonexistent/docker-registry";
  RegistryMirrors missing(options_, nullptr);
  ASSERT_TRUE(missing.Serve("lab", "127.0.0.2")) << "nodes fall back to the upstream meanwhile";
  EXPECT_THAT(missing.Problems().at("docker.io"), HasSubstr("Debian package docker-registry"));
}

}  // namespace
}  // namespace vmlab::reconcilers::cache
