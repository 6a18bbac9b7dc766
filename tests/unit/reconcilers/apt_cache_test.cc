// The managed apt cache: the real apt-cacher-ng, started and supervised by
// AptCache on loopback addresses standing in for lab gateways, in front of a
// tiny Debian repository served by a local HTTP server (nothing leaves the
// machine); the real apt-get fetches through it with the configuration the
// nodes get. Hits and misses come from apt-cacher-ng's own log.
#include "reconcilers/cache/apt_cache.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "../controller/scratch_dir.h"
#include "fixtures.h"
#include "metrics/cache_metrics.h"
#include "metrics/registry.h"
#include "reconcilers/bootstrap/node_config.h"
#include "shell.h"

namespace vmlab::reconcilers::cache {
namespace {

using testing::HasSubstr;
using testing_support::ScratchDir;
using testing_support::Shell;

// A free port below 32768: apt-cacher-ng 3.7 fails to bind ports above
// 32767 ("Error resolving address for binding"), and the kernel's ephemeral
// ports are above that.
int FreePort() {
  static int next = 20000 + static_cast<int>(std::random_device{}() % 11000);
  for (int tries = 0; tries < 2000; ++tries) {
    const int port = next++;
    if (next >= 32000) next = 20000;
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool free = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    close(fd);
    if (free) return port;
  }
  ADD_FAILURE() << "no free port";
  return 0;
}

class AptCacheTest : public testing::Test {
 protected:
  void SetUp() override {
    const std::string d = dir_.path().string();
    // A flat Debian repository with one package, served over HTTP on loopback.
    Shell(fmt::format(
        "set -e; mkdir -p {d}/pkg/DEBIAN {d}/repo/pool; printf 'Package: vmlab-cache-test\\n"
        "Version: 1.0\\nArchitecture: all\\nMaintainer: vmlab <vmlab@example.invalid>\\n"
        "Description: apt cache test package\\n' >{d}/pkg/DEBIAN/control; "
        "head -c 200000 /dev/urandom >{d}/pkg/payload; mkdir -p {d}/pkg/usr/share/vmlab; "
        "mv {d}/pkg/payload {d}/pkg/usr/share/vmlab/; "
        "dpkg-deb --build {d}/pkg {d}/repo/pool/vmlab-cache-test_1.0_all.deb >/dev/null; "
        "cd {d}/repo && dpkg-scanpackages pool /dev/null 2>/dev/null >Packages",
        fmt::arg("d", d)));
    upstream_port_ = FreePort();
    Shell(
        fmt::format("python3 -m http.server {} --bind 127.0.0.1 --directory {}/repo "
                    ">{}/upstream.log 2>&1 & echo $! >{}/upstream.pid",
                    upstream_port_, d, d, d));
    upstream_pid_ = std::stoi(testing_support::ReadFile(dir_.path() / "upstream.pid"));
    // This test's server (a marker only its folder has), not another test's on a reused port.
    const std::string marker = dir_.path().filename().string();
    std::ofstream(dir_.path() / "repo" / marker) << marker;
    Shell(
        fmt::format("for i in $(seq 100); do [ \"$(curl -fs http://127.0.0.1:{}/{})\" = {} ] "
                    "&& exit 0; sleep 0.1; done; exit 1",
                    upstream_port_, marker, marker));
    options_.mode = "managed";
    options_.state_dir = dir_.path() / "state";
    options_.port = FreePort();
    options_.upstream_ports = {upstream_port_};
  }
  void TearDown() override { kill(upstream_pid_, SIGTERM); }

  // apt-get update and download of the package through `proxy`, as a node
  // would (its apt configuration is the one vmlab renders for nodes).
  void AptGet(const std::string& proxy, const std::string& name,
              const std::string& package = "vmlab-cache-test",
              const std::string& file = "vmlab-cache-test_1.0_all.deb") {
    const auto root = dir_.path() / name;
    for (const char* sub : {"etc/apt.conf.d", "etc/sources.list.d", "state/lists/partial",
                            "cache/archives/partial", "download"}) {
      std::filesystem::create_directories(root / sub);
    }
    std::ofstream(root / "etc/sources.list")
        << fmt::format("deb [trusted=yes] http://127.0.0.1:{}/ ./\n", upstream_port_);
    std::ofstream(root / "etc/apt.conf.d/90vmlab-proxy") << bootstrap::RenderAptProxyConfig(proxy);
    const std::string r = root.string();
    // -c: apt reads its configuration parts before -o options apply.
    const std::string apt = fmt::format(
        "APT_CONFIG=/dev/null apt-get -q -c {r}/etc/apt.conf.d/90vmlab-proxy -o Dir::Etc={r}/etc "
        "-o Dir::State={r}/state -o Dir::Cache={r}/cache -o Debug::NoLocking=1 "
        "-o APT::Sandbox::User=root",
        fmt::arg("r", r));
    // As the base phase runs apt (retry 8 ...): a node retries a failed fetch.
    std::string failed;
    for (int attempt = 0; attempt < 3; ++attempt) {
      failed = Shell(
          fmt::format("cd {r}/download && {apt} update >{r}/update.log 2>&1 && {apt} download "
                      "{package} >{r}/download.log 2>&1 || cat {r}/*.log",
                      fmt::arg("r", r), fmt::arg("apt", apt), fmt::arg("package", package)));
      if (failed.empty()) break;
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    EXPECT_EQ(failed, "") << "apt-get through the cache failed";
    EXPECT_TRUE(std::filesystem::exists(root / "download" / file)) << name;
  }

  ScratchDir dir_;
  int upstream_port_ = 0;
  int upstream_pid_ = 0;
  AptCacheOptions options_;
};

TEST_F(AptCacheTest, TheSecondNodeIsServedFromTheCache) {
  metrics::Registry registry;
  metrics::CacheMetrics metrics(registry);
  AptCache cache(options_, &metrics);
  const auto proxy = cache.Serve("lab", "127.0.0.1");
  ASSERT_TRUE(proxy) << proxy.error().message;
  EXPECT_EQ(*proxy, fmt::format("http://127.0.0.1:{}", options_.port));
  EXPECT_NE(cache.Pid(), 0);

  // apt-cacher-ng writes its log a moment after it answers.
  auto poll_until = [&](const std::function<bool(const AptCacheTotals&)>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    AptCacheTotals totals = cache.Poll();
    while (!done(totals) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      totals = cache.Poll();
    }
    return totals;
  };
  AptGet(*proxy, "node-1");
  const auto first = poll_until([](const AptCacheTotals& t) { return t.misses >= 1; });
  EXPECT_GE(first.misses, 1u) << "the first node's package came from upstream";
  AptGet(*proxy, "node-2");
  // The hit and its bytes may land in the log in separate writes: wait for both.
  const auto second = poll_until([&](const AptCacheTotals& t) {
    return t.hits > first.hits && t.served_bytes > 2 * 150000u;
  });
  EXPECT_GT(second.hits, first.hits) << "the second node's package came from the cache";
  EXPECT_GT(second.served_bytes, 2 * 150000u) << "the package was served twice";
  const std::string upstream = testing_support::ReadFile(dir_.path() / "upstream.log");
  std::size_t fetched = 0;
  for (auto at = upstream.find("GET /pool/vmlab-cache-test_1.0_all.deb"); at != std::string::npos;
       at = upstream.find("GET /pool/vmlab-cache-test_1.0_all.deb", at + 1)) {
    ++fetched;
  }
  EXPECT_EQ(fetched, 1u) << "upstream saw the package once:\n" << upstream;

  const std::string text = registry.Serialize();
  EXPECT_EQ(
      testing_support::Metric(text, R"(vmlab_cache_requests_total{cache="apt",result="hit"})"),
      static_cast<double>(second.hits));
  EXPECT_EQ(
      testing_support::Metric(text, R"(vmlab_cache_requests_total{cache="apt",result="miss"})"),
      static_cast<double>(second.misses));
  EXPECT_THAT(testing_support::ReadFile(dir_.path() / "state/cache/apt/conf/acng.conf"),
              HasSubstr("BindAddress: 127.0.0.1\n"));
}

// Warming picks the pinned packages and the newest of what they depend on
// from the repository's index (dpkg's version order).
TEST(AptWarmTest, ChoosesThePinnedPackagesAndTheirNewestDependencies) {
  const std::string index =
      "Package: kubeadm\nVersion: 1.30.4-1.1\nDepends: cri-tools (>= 1.30.0), kubeadm-helper | "
      "other, iptables\nFilename: pool/kubeadm-1.30.4.deb\n\n"
      "Package: kubeadm\nVersion: 1.30.10-1.1\nFilename: pool/kubeadm-1.30.10.deb\n\n"
      "Package: kubeadm\nVersion: 1.30.4-2.1\nFilename: pool/kubeadm-1.30.4-2.deb\n\n"
      "Package: cri-tools\nVersion: 1.30.2-1.1\nArchitecture: arm64\nFilename: "
      "pool/cri-tools-arm64.deb\n\n"
      "Package: cri-tools\nVersion: 1.30.1-1.1\nArchitecture: amd64\nFilename: "
      "pool/cri-tools-1.30.1.deb\n\n"
      "Package: cri-tools\nVersion: 1.9.0-1.1\nFilename: pool/cri-tools-1.9.0.deb\n\n"
      "Package: kubeadm-helper\nVersion: 1.0~rc1\nFilename: pool/helper-rc1.deb\n\n"
      "Package: kubeadm-helper\nVersion: 1.0\nFilename: pool/helper-1.0.deb\n";
  const auto files = ChoosePackages(index, {{"kubeadm", "1.30.4-"}});
  ASSERT_TRUE(files) << files.error().message;
  EXPECT_EQ(*files, (std::vector<std::string>{"pool/kubeadm-1.30.4-2.deb"}))
      << "1.30.4-2.1 is the newest 1.30.4 (its entry has no dependencies)";
  const auto first =
      ChoosePackages(index.substr(0, index.find("Package: kubeadm\nVersion: 1.30.10")) +
                         index.substr(index.find("Package: cri-tools")),
                     {{"kubeadm", "1.30.4-"}});
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, (std::vector<std::string>{"pool/kubeadm-1.30.4.deb",
                                              "pool/cri-tools-1.30.1.deb", "pool/helper-1.0.deb"}))
      << "dependencies at their newest amd64 version (1.30.1 > 1.9.0, 1.0 > 1.0~rc1; not "
         "arm64's 1.30.2); iptables is Debian's";
  const auto missing = ChoosePackages(index, {{"kubelet", "1.30.4-"}});
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().message, HasSubstr("kubelet 1.30.4-* is not in the repository"));
}

// The pinned packages are fetched into the cache while the nodes boot: a
// node's download is then a hit, and the upstream served the file once.
TEST_F(AptCacheTest, WarmingStoresThePinnedPackagesBeforeTheNodesAsk) {
  const std::string d = dir_.path().string();
  Shell(fmt::format(
      "set -e; for v in 1.30.4-1.1 1.29.9-1.1; do p={d}/k-$v; mkdir -p $p/DEBIAN; printf "
      "'Package: vmlab-kubeadm\nVersion: %s\nArchitecture: all\nMaintainer: vmlab "
      "<vmlab@example.invalid>\nDepends: vmlab-cri\nDescription: warm test\n' $v "
      ">$p/DEBIAN/control; dpkg-deb --build $p {d}/repo/pool/vmlab-kubeadm_${{v}}_all.deb "
      ">/dev/null; done; p={d}/cri; mkdir -p $p/DEBIAN; printf 'Package: vmlab-cri\nVersion: "
      "1.30.1-1.1\nArchitecture: all\nMaintainer: vmlab <vmlab@example.invalid>\nDescription: "
      "warm test\n' >$p/DEBIAN/control; dpkg-deb --build $p {d}/repo/pool/vmlab-cri_1_all.deb "
      ">/dev/null; cd {d}/repo && dpkg-scanpackages pool /dev/null 2>/dev/null >Packages",
      fmt::arg("d", d)));
  metrics::Registry registry;
  metrics::CacheMetrics metrics(registry);
  AptCache cache(options_, &metrics);
  const auto proxy = cache.Serve("lab", "127.0.0.1");
  ASSERT_TRUE(proxy) << proxy.error().message;
  cache.Warm("lab", fmt::format("http://127.0.0.1:{}/", upstream_port_),
             {{"vmlab-kubeadm", "1.30.4-"}});
  AptWarmStatus status;
  for (int i = 0; i < 300 && !status.done; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    status = cache.Warming("lab");
  }
  ASSERT_TRUE(status.done);
  EXPECT_EQ(status.failure, "");
  EXPECT_EQ(status.packages, 2) << "the pinned one and its dependency";
  EXPECT_EQ(status.warmed, 2);
  auto fetched = [&](const std::string& file) {
    const std::string log = testing_support::ReadFile(dir_.path() / "upstream.log");
    std::size_t count = 0;
    for (auto at = log.find("GET /pool/" + file); at != std::string::npos;
         at = log.find("GET /pool/" + file, at + 1)) {
      ++count;
    }
    return count;
  };
  EXPECT_EQ(fetched("vmlab-kubeadm_1.30.4-1.1_all.deb"), 1u);
  EXPECT_EQ(fetched("vmlab-cri_1_all.deb"), 1u);
  EXPECT_EQ(fetched("vmlab-kubeadm_1.29.9-1.1_all.deb"), 0u) << "not the pinned version";
  (void)cache.Poll();
  // A node downloads the pinned package through the cache.
  const auto before = cache.Poll();
  AptGet(*proxy, "node", "vmlab-kubeadm=1.30.4-1.1", "vmlab-kubeadm_1.30.4-1.1_all.deb");
  AptCacheTotals after = cache.Poll();
  for (int i = 0; i < 100 && after.hits == before.hits; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    after = cache.Poll();
  }
  EXPECT_EQ(after.hits, before.hits + 1) << "the node's package came from the cache";
  EXPECT_EQ(fetched("vmlab-kubeadm_1.30.4-1.1_all.deb"), 1u) << "upstream served it once";
}

TEST_F(AptCacheTest, ListensOnEveryLabGatewayAndComesBackWhenItDies) {
  AptCache cache(options_, nullptr);
  ASSERT_TRUE(cache.Serve("a", "127.0.0.1"));
  const pid_t first = cache.Pid();
  ASSERT_TRUE(cache.Serve("a", "127.0.0.1"));
  EXPECT_EQ(cache.Pid(), first) << "nothing changed: no restart";
  ASSERT_TRUE(cache.Serve("b", "127.0.0.2"));
  EXPECT_NE(cache.Pid(), first) << "restarted to listen on the new gateway too";
  EXPECT_THAT(testing_support::ReadFile(dir_.path() / "state/cache/apt/conf/acng.conf"),
              HasSubstr("BindAddress: 127.0.0.1 127.0.0.2\n"));
  cache.Release("a");
  EXPECT_THAT(testing_support::ReadFile(dir_.path() / "state/cache/apt/conf/acng.conf"),
              HasSubstr("BindAddress: 127.0.0.2\n"));

  const pid_t victim = cache.Pid();
  ASSERT_NE(victim, 0);
  kill(victim, SIGKILL);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((cache.Pid() == victim || cache.Pid() == 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(cache.Pid(), victim) << "the supervisor started it again";
  EXPECT_NE(cache.Pid(), 0);
  const pid_t last = cache.Pid();
  cache.Stop();
  EXPECT_EQ(kill(last, 0), -1) << "stopped with the cache";
}

// As in the controller, SIGTERM is blocked in the threads that start it: the
// child still stops at once. One left by a controller that died is stopped
// by the next one of the same state dir.
TEST_F(AptCacheTest, StopsPromptlyAndReplacesALeftover) {
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGINT);
  sigset_t before;
  {
    AptCache first(options_, nullptr);
    ASSERT_TRUE(first.Serve("lab", "127.0.0.1"));  // writes its configuration
    first.Stop();
    // An apt-cacher-ng of this state dir left running by a controller that was killed.
    const std::string conf = (dir_.path() / "state/cache/apt/conf").string();
    Shell(fmt::format("/usr/sbin/apt-cacher-ng -c {} >/dev/null 2>&1 & echo $! >{}/leftover.pid",
                      conf, dir_.path().string()));
    const int leftover = std::stoi(testing_support::ReadFile(dir_.path() / "leftover.pid"));
    for (int i = 0; i < 100 && testing_support::ReadFile(dir_.path() / "state/cache/apt/run/pid") !=
                                   std::to_string(leftover) + "\n";
         ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    pthread_sigmask(SIG_BLOCK, &blocked, &before);
    AptCache second(options_, nullptr);
    ASSERT_TRUE(second.Serve("lab", "127.0.0.1")) << second.LastError();
    EXPECT_NE(second.Pid(), leftover);
    EXPECT_NE(second.Pid(), 0);
    EXPECT_FALSE(std::filesystem::exists(fmt::format("/proc/{}/cmdline", leftover)) &&
                 testing_support::ReadFile(fmt::format("/proc/{}/cmdline", leftover))
                         .find("apt-cacher-ng") != std::string::npos)
        << "the leftover was stopped";
    const auto started = std::chrono::steady_clock::now();
    second.Stop();
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2))
        << "SIGTERM reached it (not blocked in the child)";
  }
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
}

TEST_F(AptCacheTest, OtherModesAndFailuresAreClear) {
  AptCacheOptions off;
  EXPECT_EQ(AptCache(off, nullptr).Serve("lab", "10.0.0.1").value(), "");
  AptCacheOptions url;
  url.mode = "http://apt.example.internal:3142/";
  EXPECT_EQ(AptCache(url, nullptr).Serve("lab", "10.0.0.1").value(),
            "http://apt.example.internal:3142");
  EXPECT_TRUE(CheckAptCacheMode("managed"));
  EXPECT_FALSE(CheckAptCacheMode("ftp://x"));
  EXPECT_FALSE(CheckAptCacheMode("http://x\"; rm"));

  options_.binary = "/nonexistent/apt-cacher-ng";
  AptCache missing(options_, nullptr);
  const auto served = missing.Serve("lab", "127.0.0.1");
  ASSERT_FALSE(served);
  EXPECT_THAT(served.error().message, HasSubstr("Debian package apt-cacher-ng"));
}

}  // namespace
}  // namespace vmlab::reconcilers::cache
