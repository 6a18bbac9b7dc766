// Node progress reports: authentication, wrong node, replays, oversized and
// malformed bodies, a flood (bounded, honest nodes unaffected), the metrics;
// and the guest simulator that posts through the same checks.
#include "reconcilers/bootstrap/progress.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "../controller/scratch_dir.h"
#include "controller/fake_clock.h"
#include "fixtures.h"
#include "metrics/bootstrap_metrics.h"
#include "metrics/cache_metrics.h"
#include "metrics/registry.h"
#include "reconcilers/bootstrap/progress_listener.h"
#include "reconcilers/bootstrap/simulator.h"
#include "reconcilers/cache/image_archives.h"
#include "shell.h"

namespace vmlab::reconcilers::bootstrap {
namespace {

using testing::HasSubstr;

constexpr const char* kKey = "0123456789abcdefghijklmnopqrstuv";

LabIdentity Identity() {
  LabIdentity id;
  id.progress_key = kKey;
  id.roles = {
      {"lab-cp-1", "control-plane"}, {"lab-worker-1", "worker"}, {"lab-worker-2", "worker"}};
  id.phases = {{"lab-cp-1", {"base", "endpoint", "primary"}},
               {"lab-worker-1", {"base", "worker"}},
               {"lab-worker-2", {"base", "worker"}}};
  id.caches = {{"lab-worker-1", "golden"}};  // lab-worker-2: unknown
  return id;
}

std::string Body(const std::string& node, const std::string& phase, const std::string& state,
                 int seq, const std::string& extra = "") {
  return fmt::format(R"({{"node":"{}","phase":"{}","state":"{}","seq":{}{}}})", node, phase, state,
                     seq, extra);
}

std::string Bearer(const std::string& node) { return "Bearer " + NodeToken(kKey, node); }

double Metric(const std::string& text, const std::string& series) {
  for (std::size_t at = text.find(series + " "); at != std::string::npos;) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at = text.find(series + " ", at + 1);
  }
  return -1;
}

class ProgressTest : public testing::Test {
 protected:
  ProgressTest() { store_.SetLab("lab", Identity()); }
  controller::FakeClock clock_;
  metrics::Registry registry_;
  metrics::BootstrapMetrics metrics_{registry_};
  std::vector<std::string> changed_;
  ProgressStore store_{clock_, [this](const std::string& lab) { changed_.push_back(lab); },
                       &metrics_};
};

TEST_F(ProgressTest, TokensAreDerivedPerNodeAndDiffer) {
  EXPECT_EQ(NodeToken(kKey, "lab-cp-1"), NodeToken(kKey, "lab-cp-1"));
  EXPECT_NE(NodeToken(kKey, "lab-cp-1"), NodeToken(kKey, "lab-worker-1"));
  EXPECT_NE(NodeToken(kKey, "lab-cp-1"), NodeToken("another key of 32 characters....", "lab-cp-1"));
  EXPECT_EQ(NodeToken(kKey, "x").size(), 64u);
}

TEST_F(ProgressTest, AnHonestNodesPhasesAreRecordedAndTimed) {
  EXPECT_EQ(
      store_.Report("lab", Bearer("lab-worker-1"), Body("lab-worker-1", "base", "started", 1)),
      Verdict::kAccepted);
  clock_.Advance(std::chrono::seconds(42));
  EXPECT_EQ(store_.Report("lab", Bearer("lab-worker-1"), Body("lab-worker-1", "base", "done", 2)),
            Verdict::kAccepted);
  auto p = store_.Progress("lab").at("lab-worker-1");
  EXPECT_EQ(p.phase, "base");
  EXPECT_EQ(p.state, "done");
  EXPECT_FALSE(p.bootstrap_done);
  EXPECT_EQ(
      store_.Report("lab", Bearer("lab-worker-1"), Body("lab-worker-1", "worker", "started", 3)),
      Verdict::kAccepted);
  EXPECT_EQ(store_.Report("lab", Bearer("lab-worker-1"), Body("lab-worker-1", "worker", "done", 4)),
            Verdict::kAccepted);
  EXPECT_TRUE(store_.Progress("lab").at("lab-worker-1").bootstrap_done);
  EXPECT_EQ(changed_.size(), 4u) << "every accepted report enqueues the lab";
  const std::string text = registry_.Serialize();
  EXPECT_EQ(
      Metric(
          text,
          R"(vmlab_bootstrap_phase_duration_seconds_sum{cache="golden",phase="base",role="worker"})"),
      42)
      << "tagged by what served the node's downloads";
  EXPECT_EQ(
      Metric(
          text,
          R"(vmlab_bootstrap_phase_duration_seconds_count{cache="golden",phase="worker",role="worker"})"),
      1);
  EXPECT_EQ(
      Metric(
          text,
          R"(vmlab_bootstrap_phase_duration_seconds_count{cache="caches",phase="base",role="worker"})"),
      0);
  EXPECT_EQ(Metric(text, R"(vmlab_progress_reports_total{result="accepted"})"), 4);
}

TEST(RedactSecretsTest, TokensCertificateKeysAndPrivateKeysDoNotTravel) {
  const std::string hash(64, 'c');
  const std::string key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  EXPECT_EQ(RedactSecrets("kubeadm join 172.42.42.10:16443 --token abcdef.0123456789abcdef \\\n"
                          "  --discovery-token-ca-cert-hash sha256:" +
                          hash + " --control-plane --certificate-key " + key + "\n"),
            "kubeadm join 172.42.42.10:16443 --token <redacted token> \\\n"
            "  --discovery-token-ca-cert-hash sha256:" +
                hash + " --control-plane --certificate-key <redacted key>\n");
  EXPECT_EQ(RedactSecrets("before\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\nxyz\n"
                          "-----END EC PRIVATE KEY-----\nafter"),
            "before\n<redacted private key>\nafter");
  EXPECT_EQ(RedactSecrets("cut: -----BEGIN PRIVATE KEY-----\nMIIEv"), "cut: <redacted private key>")
      << "a key cut by the tail's end";
  EXPECT_EQ(RedactSecrets("E: Unable to locate package kubelet=1.30.4-1.1"),
            "E: Unable to locate package kubelet=1.30.4-1.1");
}

TEST_F(ProgressTest, AFailureKeepsItsExitCodeAttemptAndLogTail) {
  const std::string log(10000, 'x');
  ASSERT_EQ(store_.Report("lab", Bearer("lab-cp-1"),
                          Body("lab-cp-1", "endpoint", "failed", 7,
                               R"(,"exitCode":100,"attempt":2,"log":")" + log + "\"")),
            Verdict::kAccepted);
  const auto p = store_.Progress("lab").at("lab-cp-1");
  EXPECT_EQ(p.state, "failed");
  EXPECT_EQ(p.exit_code, 100);
  EXPECT_EQ(p.attempt, 2);
  EXPECT_EQ(p.log_tail.size(), kMaxLogTailBytes) << "only the end of a long log is kept";
  ASSERT_EQ(
      store_.Report("lab", Bearer("lab-cp-1"),
                    Body("lab-cp-1", "endpoint", "failed", 8,
                         R"(,"exitCode":1,"attempt":3,"log":"--token abcdef.0123456789abcdef")")),
      Verdict::kAccepted);
  EXPECT_EQ(store_.Progress("lab").at("lab-cp-1").log_tail, "--token <redacted token>")
      << "what a node sends is redacted before status, events and logs see it";
  const std::string text = registry_.Serialize();
  EXPECT_EQ(
      Metric(text,
             R"(vmlab_bootstrap_phase_failures_total{phase="endpoint",role="control-plane"})"),
      2)
      << "each failed attempt";
  EXPECT_EQ(Metric(text, R"(vmlab_bootstrap_phase_failures_total{phase="base",role="worker"})"), 0)
      << "every (role, phase) is exported from the start";
}

TEST_F(ProgressTest, BadReportsAreRefusedAndCounted) {
  const auto body = Body("lab-worker-1", "base", "started", 1);
  EXPECT_EQ(store_.Report("lab", "", body), Verdict::kUnauthorized);
  EXPECT_EQ(store_.Report("lab", "Bearer nope", body), Verdict::kUnauthorized);
  EXPECT_EQ(store_.Report("lab", "Basic " + NodeToken(kKey, "lab-worker-1"), body),
            Verdict::kUnauthorized);
  EXPECT_EQ(store_.Report("lab", Bearer("lab-worker-2"), body), Verdict::kWrongNode)
      << "another node's token";
  EXPECT_EQ(
      store_.Report("lab", Bearer("lab-worker-9"), Body("lab-worker-9", "base", "started", 1)),
      Verdict::kWrongNode);
  EXPECT_EQ(store_.Report("other", Bearer("lab-worker-1"), body), Verdict::kUnknownLab);
  EXPECT_EQ(store_.Report("lab", Bearer("lab-worker-1"), "{not json"), Verdict::kMalformed);
  EXPECT_EQ(store_.Report("lab", Bearer("lab-worker-1"), "[1,2]"), Verdict::kMalformed);
  EXPECT_EQ(
      store_.Report("lab", Bearer("lab-worker-1"), Body("lab-worker-1", "base", "finished", 1)),
      Verdict::kMalformed);
  EXPECT_EQ(
      store_.Report("lab", Bearer("lab-worker-1"), Body("lab-worker-1", "primary", "started", 1)),
      Verdict::kMalformed)
      << "a phase the node does not run";
  EXPECT_EQ(store_.Report("lab", Bearer("lab-worker-1"),
                          R"({"node":"lab-worker-1","phase":"base","state":"started","seq":"1"})"),
            Verdict::kMalformed);
  EXPECT_EQ(store_.Report("lab", Bearer("lab-worker-1"), std::string(kMaxReportBytes + 1, ' ')),
            Verdict::kOversized);
  EXPECT_TRUE(store_.Progress("lab").empty()) << "nothing was recorded";
  EXPECT_TRUE(changed_.empty());

  EXPECT_EQ(store_.Report("lab", Bearer("lab-worker-1"), body), Verdict::kAccepted);
  EXPECT_EQ(store_.Report("lab", Bearer("lab-worker-1"), body), Verdict::kReplay);
  EXPECT_EQ(store_.Report("lab", Bearer("lab-worker-1"), Body("lab-worker-1", "base", "done", 1)),
            Verdict::kReplay)
      << "a sequence number must grow";
  const std::string text = registry_.Serialize();
  EXPECT_EQ(Metric(text, R"(vmlab_progress_reports_total{result="unauthorized"})"), 3);
  EXPECT_EQ(Metric(text, R"(vmlab_progress_reports_total{result="wrong_node"})"), 2);
  EXPECT_EQ(Metric(text, R"(vmlab_progress_reports_total{result="malformed"})"), 5);
  EXPECT_EQ(Metric(text, R"(vmlab_progress_reports_total{result="oversized"})"), 1);
  EXPECT_EQ(Metric(text, R"(vmlab_progress_reports_total{result="replay"})"), 2);
  EXPECT_EQ(Metric(text, R"(vmlab_progress_reports_total{result="unknown_lab"})"), 1);
  EXPECT_EQ(HttpStatus(Verdict::kReplay), 409);
  EXPECT_EQ(HttpStatus(Verdict::kRateLimited), 429);
}

TEST_F(ProgressTest, AFloodIsRateLimitedAndHonestNodesGetThrough) {
  int accepted = 0;
  int limited = 0;
  for (int seq = 1; seq <= 1000; ++seq) {
    const auto v =
        store_.Report("lab", Bearer("lab-worker-2"), Body("lab-worker-2", "base", "started", seq));
    accepted += v == Verdict::kAccepted;
    limited += v == Verdict::kRateLimited;
    if (seq % 100 == 0) {
      // The honest node reports between the flood's bursts.
      EXPECT_EQ(store_.Report("lab", Bearer("lab-worker-1"),
                              Body("lab-worker-1", "base", "started", seq / 100)),
                Verdict::kAccepted);
    }
  }
  EXPECT_EQ(accepted, 20) << "the burst, then nothing without time passing";
  EXPECT_EQ(limited, 980);
  clock_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(
      store_.Report("lab", Bearer("lab-worker-2"), Body("lab-worker-2", "base", "done", 1001)),
      Verdict::kAccepted)
      << "it refills with time";
}

TEST_F(ProgressTest, ANodeCreatedAnewStartsOver) {
  ASSERT_EQ(
      store_.Report("lab", Bearer("lab-worker-1"), Body("lab-worker-1", "base", "started", 9)),
      Verdict::kAccepted);
  store_.ResetNode("lab", "lab-worker-1");
  EXPECT_FALSE(store_.Progress("lab").contains("lab-worker-1"));
  EXPECT_EQ(
      store_.Report("lab", Bearer("lab-worker-1"), Body("lab-worker-1", "base", "started", 1)),
      Verdict::kAccepted)
      << "a fresh guest counts from 1 again";
}

// The simulator posts through the same checks, with the nodes' real tokens.
TEST(GuestSimulatorTest, PlaysEveryPhaseJoinsAfterThePrimaryAndRetriesAnInjectedFailure) {
  controller::RealClock clock;
  metrics::Registry registry;
  metrics::BootstrapMetrics metrics(registry);
  ProgressStore store(clock, nullptr, &metrics);
  store.SetLab("lab", Identity());
  SimulationOptions options;
  for (auto& [phase, seconds] : options.phase_seconds) seconds = 0.02;
  options.phase_seconds["primary"] = 0.3;
  options.retry_seconds = 0.05;
  GuestSimulator simulator(clock, store, options);
  for (const auto& [node, phases] : Identity().phases) {
    simulator.Boot("lab", node, phases, NodeToken(kKey, node),
                   node == "lab-worker-2" ? std::set<std::string>{"base"} : std::set<std::string>{},
                   "abcdef.0123456789abcdef", clock.WallNow() + std::chrono::hours(1));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool saw_failure = false;
  bool worker_waited = false;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto progress = store.Progress("lab");
    if (progress.contains("lab-worker-2") && progress.at("lab-worker-2").state == "failed") {
      saw_failure = true;
      EXPECT_THAT(progress.at("lab-worker-2").log_tail,
                  HasSubstr("simulated failure of phase base"));
    }
    if (progress.contains("lab-worker-1") && progress.at("lab-worker-1").phase == "worker" &&
        progress.contains("lab-cp-1") && !progress.at("lab-cp-1").bootstrap_done) {
      worker_waited = true;
      EXPECT_EQ(progress.at("lab-worker-1").state, "started") << "no join before the primary";
    }
    if (progress.size() == 3 && std::all_of(progress.begin(), progress.end(), [](const auto& e) {
          return e.second.bootstrap_done && e.second.simulated;
        })) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const auto progress = store.Progress("lab");
  ASSERT_EQ(progress.size(), 3u);
  for (const auto& [node, p] : progress) EXPECT_TRUE(p.bootstrap_done) << node;
  EXPECT_TRUE(saw_failure) << "the injected failure was reported";
  EXPECT_TRUE(worker_waited) << "the worker's join waited for the primary";
  EXPECT_EQ(Metric(registry.Serialize(), R"(vmlab_progress_reports_total{result="accepted"})"),
            2 * (3 + 2 + 2) + 2)
      << "every phase started and done, plus the failure and the retry's start";
  const auto nodes = simulator.Cluster("lab")->Nodes();
  ASSERT_EQ(nodes.size(), 3u) << "kubeadm init and two joins registered their Nodes";
  for (const auto& node : nodes) EXPECT_TRUE(node.ready) << node.name;
}

// The simulated cluster checks join tokens as kubeadm's discovery does,
// refuses a second Ready Node of one name, keeps evicted Deployment pods
// running elsewhere, and honours a blocking PodDisruptionBudget.
TEST(SimulatedClusterTest, JoinsEvictionsAndTokens) {
  controller::FakeClock clock;
  auto cluster = std::make_shared<SimulatedCluster>(clock);
  cluster->Init("lab-cp-1", "abcdef.0123456789abcdef", clock.WallNow() + std::chrono::hours(24));
  auto unknown = cluster->Join("lab-worker-1", true, "zzzzzz.0123456789abcdef");
  ASSERT_FALSE(unknown);
  EXPECT_THAT(unknown.error().message, HasSubstr(R"(for token ID "zzzzzz")"));
  ASSERT_TRUE(cluster->Join("lab-worker-1", true, "abcdef.0123456789abcdef"));
  ASSERT_TRUE(cluster->Join("lab-worker-2", true, "abcdef.0123456789abcdef"));
  auto twin = cluster->Join("lab-worker-2", true, "abcdef.0123456789abcdef");
  ASSERT_FALSE(twin);
  EXPECT_THAT(twin.error().message,
              HasSubstr(R"(a Node with name "lab-worker-2" and status "Ready")"));
  cluster->NodeDown("lab-worker-2");
  EXPECT_TRUE(cluster->Join("lab-worker-2", true, "abcdef.0123456789abcdef"))
      << "a NotReady Node of that name is taken over";

  auto client = cluster->Client();
  const auto pods = client->ListPods("lab-worker-2");
  ASSERT_TRUE(pods);
  EXPECT_EQ(pods->size(), 3u) << "two demo pods and kube-proxy";
  cluster->BlockEvictions({"lab-worker-2"});
  const auto demo =
      *std::find_if(pods->begin(), pods->end(), [](const KubePod& p) { return !p.daemon_set; });
  auto blocked = client->EvictPod(demo);
  ASSERT_TRUE(blocked);
  EXPECT_EQ(blocked->outcome, EvictionOutcome::kBlocked);
  cluster->BlockEvictions({});
  ASSERT_TRUE(client->SetUnschedulable("lab-worker-2", true));
  auto evicted = client->EvictPod(demo);
  ASSERT_TRUE(evicted);
  EXPECT_EQ(evicted->outcome, EvictionOutcome::kEvicted);
  EXPECT_EQ(cluster->PodsOn("lab-worker-2").size(), 2u);
  EXPECT_EQ(cluster->PodsOn("lab-worker-1").size(), 4u)
      << "the Deployment's pod runs again on the schedulable worker";

  clock.Advance(std::chrono::hours(25));
  auto expired = cluster->Join("lab-worker-3", true, "abcdef.0123456789abcdef");
  ASSERT_FALSE(expired) << "an expired token no longer joins";
  EXPECT_TRUE(cluster->Tokens().empty());
  ASSERT_TRUE(client->CreateBootstrapToken(
      {"ghijkl.0123456789abcdef", clock.WallNow() + std::chrono::hours(24), "rotated"}));
  EXPECT_TRUE(cluster->Join("lab-worker-3", true, "ghijkl.0123456789abcdef"));
  EXPECT_EQ(cluster->Tokens(), std::set<std::string>{"ghijkl"});
}

// The HTTP listener nodes post to, on loopback here (a lab's gateway in use).
TEST_F(ProgressTest, TheHttpListenerAnswersWithTheVerdictsStatus) {
  ProgressListeners listeners(store_);
  int port = 0;
  for (int candidate = 19441; candidate < 19541 && port == 0; ++candidate) {
    if (listeners.Ensure("lab", "127.0.0.1", candidate)) port = candidate;
  }
  ASSERT_NE(port, 0) << "no free port";
  ASSERT_TRUE(listeners.Ensure("lab", "127.0.0.1", port)) << "Ensure is idempotent";
  const std::string url = ProgressUrl("127.0.0.1", port);
  auto post = [&](const std::string& auth, const std::string& body) {
    testing_support::ScratchDir dir;
    dir.Write("body", body);
    int status = 0;
    return testing_support::Shell(
        fmt::format("curl -s -o /dev/null -w '%{{http_code}}' -X POST -H 'Authorization: {}' "
                    "-H 'Content-Type: application/json' --data-binary @{} {}",
                    auth, (dir.path() / "body").string(), url),
        &status);
  };
  EXPECT_EQ(post(Bearer("lab-worker-1"), Body("lab-worker-1", "base", "started", 1)), "202");
  EXPECT_EQ(post(Bearer("lab-worker-1"), Body("lab-worker-1", "base", "started", 1)), "409");
  EXPECT_EQ(post("Bearer x", Body("lab-worker-1", "base", "done", 2)), "401");
  EXPECT_EQ(post(Bearer("lab-worker-2"), Body("lab-worker-1", "base", "done", 2)), "403");
  EXPECT_EQ(post(Bearer("lab-worker-1"), "{"), "400");
  EXPECT_EQ(post(Bearer("lab-worker-1"), std::string(kMaxReportBytes + 10, 'x')), "413");
  int status = 0;
  EXPECT_EQ(testing_support::Shell(fmt::format("curl -s -o /dev/null -w '%{{http_code}}' {}", url),
                                   &status),
            "405");
  EXPECT_EQ(store_.Progress("lab").at("lab-worker-1").state, "started");
  listeners.Remove("lab");
  EXPECT_NE(post(Bearer("lab-worker-1"), Body("lab-worker-1", "base", "done", 3)), "202")
      << "removed with its lab";
}

// Image archives through the same listener: a node's token is needed; the
// list names each archive by content; the bytes are the file's.
TEST_F(ProgressTest, TheListenerServesTheLabsImageArchivesToItsNodes) {
  testing_support::ScratchDir archives;
  (void)testing_support::Shell(
      "bash " + (testing_support::kSourceDir / "tests/fixtures/images/make_archives.sh").string() +
      " " + archives.path().string());
  auto catalog = cache::ScanArchives(archives.path());
  ASSERT_TRUE(catalog);
  ASSERT_EQ(catalog->archives.size(), 2u);
  const auto app = catalog->archives[0].images.contains("example.com/team/app:1.0")
                       ? catalog->archives[0]
                       : catalog->archives[1];

  metrics::Registry registry;
  metrics::CacheMetrics metrics(registry);
  ProgressListeners listeners(store_, &metrics);
  int port = 0;
  for (int candidate = 19541; candidate < 19641 && port == 0; ++candidate) {
    if (listeners.Ensure("lab", "127.0.0.1", candidate)) port = candidate;
  }
  ASSERT_NE(port, 0) << "no free port";
  listeners.SetArchives("lab", catalog->archives);
  const std::string base = fmt::format("http://127.0.0.1:{}/v1/archives", port);
  testing_support::ScratchDir out;
  auto get = [&](const std::string& auth, const std::string& url, const std::string& file) {
    int status = 0;
    return testing_support::Shell(
        fmt::format("curl -s -o {} -w '%{{http_code}}' -H 'Authorization: {}' {}",
                    (out.path() / file).string(), auth, url),
        &status);
  };
  EXPECT_EQ(get("Bearer nope", base, "denied"), "401");
  EXPECT_EQ(get(Bearer("lab-worker-2"), base, "list"), "200");
  const std::string list = testing_support::ReadFile(out.path() / "list");
  EXPECT_THAT(list, HasSubstr(fmt::format("{} {} example.com/team/app:1.0\n", app.id, app.size)));
  EXPECT_THAT(list, HasSubstr("docker.io/library/tools:2"));
  EXPECT_EQ(get(Bearer("lab-worker-2"), base + "/" + app.id, "app.tar"), "200");
  int same = 0;
  (void)testing_support::Shell(
      fmt::format("cmp -s {} {}", (out.path() / "app.tar").string(), app.path.string()), &same);
  EXPECT_EQ(same, 0) << "the archive's bytes";
  EXPECT_EQ(get(Bearer("lab-worker-2"), base + "/0123", "missing"), "404");
  EXPECT_EQ(get(Bearer("lab-worker-2"), fmt::format("http://127.0.0.1:{}/other", port), "x"),
            "404");
  EXPECT_THAT(registry.Serialize(),
              HasSubstr(R"(vmlab_cache_requests_total{cache="archives",result="hit"} 1)"));
}

}  // namespace
}  // namespace vmlab::reconcilers::bootstrap
