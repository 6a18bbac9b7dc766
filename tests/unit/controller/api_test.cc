// The HTTP API: routes and JSON through HandleApiRequest, and the same over a
// real listener on 127.0.0.1 (port 0) with a real HTTP client (curl).
#include "controller/api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "controller/fake_clock.h"
#include "controller/http_server.h"
#include "crds/canonical.h"
#include "crds/labcluster_parse.h"
#include "fake_desired_state.h"
#include "metrics/lab_metrics.h"
#include "metrics/registry.h"
#include "scratch_dir.h"

namespace vmlab::controller {
namespace {

using testing::AllOf;
using testing::HasSubstr;

using testing_support::FakeDesiredState;

class ApiTest : public testing::Test {
 protected:
  ApiTest() {
    auto docs =
        crds::ParseManifests("spk.yaml", testing_support::LabManifest("spk", "172.42.42.0/24", 2));
    DesiredLab lab;
    lab.name = "spk";
    lab.spec = docs.at(0).object;
    lab.spec_hash = crds::SpecHash(lab.spec->spec);
    lab.source = "spk.yaml";
    lab.spec_valid = true;
    desired_.labs["spk"] = lab;
    EXPECT_TRUE(store_.Load().has_value());
    EXPECT_TRUE(store_
                    .Update("spk",
                            [&](LabRecord& r) {
                              r.generation = 4;
                              r.created = clock_.WallNow();
                              Condition c;
                              c.type = "Ready";
                              c.status = "False";
                              c.reason = "NotImplemented";
                              c.message = "m";
                              SetCondition(r, c, clock_.WallNow());
                              AddEvent(r, "Normal", "Created", "generation 1", clock_.WallNow());
                            })
                    .has_value());
    context_.desired = &desired_;
    context_.store = &store_;
    context_.registry = &registry_;
    context_.not_ready = [this]() -> std::optional<std::string> { return not_ready_; };
  }

  testing_support::ScratchDir dir_;
  FakeClock clock_;
  FakeDesiredState desired_;
  StatusStore store_{dir_.path()};
  metrics::Registry registry_;
  metrics::LabMetrics lab_metrics_{registry_};
  ApiContext context_;
  std::optional<std::string> not_ready_;
};

TEST_F(ApiTest, ServesOneLabWithSpecAndStatus) {
  const ApiResponse r = HandleApiRequest(context_, "GET", "/api/v1/labclusters/spk");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_THAT(r.body, HasSubstr(R"("apiVersion":"vmlab.io/v1alpha1","kind":"LabCluster")"));
  EXPECT_THAT(
      r.body,
      HasSubstr(R"("name":"spk","generation":4,"creationTimestamp":"2026-02-11T16:00:00Z")"));
  EXPECT_THAT(r.body, HasSubstr(R"("workers":{"replicas":2,"cpus":2,"memoryMiB":2048)"));
  EXPECT_THAT(r.body, HasSubstr(R"("version":"1.30.4")"));
  EXPECT_THAT(r.body, HasSubstr(R"("cache":{"apt":true,"images":true})"));
  EXPECT_THAT(r.body, HasSubstr(R"("type":"Ready","status":"False","reason":"NotImplemented")"));
}

TEST_F(ApiTest, ListsLabsAndEvents) {
  const ApiResponse list = HandleApiRequest(context_, "GET", "/api/v1/labclusters");
  EXPECT_EQ(list.status, 200);
  EXPECT_THAT(list.body, HasSubstr(R"("kind":"LabClusterList","items":[{)"));
  const ApiResponse events = HandleApiRequest(context_, "GET", "/api/v1/labclusters/spk/events");
  EXPECT_EQ(events.status, 200);
  EXPECT_THAT(events.body, HasSubstr(R"("reason":"Created","message":"generation 1","count":1)"));
}

TEST_F(ApiTest, UnknownLabIsAJson404) {
  const ApiResponse r = HandleApiRequest(context_, "GET", "/api/v1/labclusters/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, HasSubstr(R"("kind":"Status")"));
  EXPECT_THAT(r.body, HasSubstr(R"(labcluster \"nope\" not found)"));
  EXPECT_EQ(HandleApiRequest(context_, "GET", "/nothing/here").status, 404);
  EXPECT_EQ(HandleApiRequest(context_, "GET", "/api/v1/labclusters/a/b/c").status, 404);
}

TEST_F(ApiTest, WritesAreRefused) {
  const ApiResponse r = HandleApiRequest(context_, "DELETE", "/api/v1/labclusters/spk");
  EXPECT_EQ(r.status, 405);
  EXPECT_THAT(r.body, HasSubstr("read-only"));
}

TEST_F(ApiTest, ReadyzFollowsReadiness) {
  not_ready_ = "initial scan of the watch folder not done";
  ApiResponse r = HandleApiRequest(context_, "GET", "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(r.body, HasSubstr("initial scan"));
  not_ready_.reset();
  EXPECT_EQ(HandleApiRequest(context_, "GET", "/readyz").status, 200);
  EXPECT_EQ(HandleApiRequest(context_, "GET", "/healthz").body, "ok\n");
}

TEST_F(ApiTest, MetricsAreTheRegistrysExposition) {
  lab_metrics_.SetManifests(3, 1, 0);
  const ApiResponse r = HandleApiRequest(context_, "GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.content_type, HasSubstr("version=0.0.4"));
  EXPECT_THAT(r.body, HasSubstr("vmlab_manifests{state=\"valid\"} 3"));
  EXPECT_THAT(r.body, HasSubstr("process_resident_memory_bytes "));
  EXPECT_THAT(r.body, HasSubstr("process_cpu_seconds_total "));
}

// Runs curl and returns "STATUS BODY".
std::string Curl(const std::string& args) {
  std::string command = "curl -s -o - -w ' %{http_code}' " + args;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  std::string output;
  std::array<char, 4096> buffer;
  while (pipe && fgets(buffer.data(), buffer.size(), pipe.get())) output += buffer.data();
  return output;
}

TEST_F(ApiTest, RealListenerOnAFreePortServesTheApi) {
  HttpServer server("127.0.0.1:0", [this](std::string_view method, std::string_view path) {
    return HandleApiRequest(context_, method, path);
  });
  ASSERT_TRUE(server.Start().has_value());
  ASSERT_GT(server.port(), 0);
  EXPECT_THAT(Curl(server.url() + "/healthz"), HasSubstr("ok\n 200"));
  EXPECT_THAT(Curl(server.url() + "/api/v1/labclusters/spk"), HasSubstr(R"("name":"spk")"));
  EXPECT_THAT(Curl(server.url() + "/api/v1/labclusters/nope"), HasSubstr(" 404"));
  EXPECT_THAT(Curl("-X POST " + server.url() + "/api/v1/labclusters"), HasSubstr(" 405"));
  dir_.Write("big-body", std::string(100 * 1024, 'x'));
  EXPECT_THAT(Curl("--max-time 5 --data-binary @" + (dir_.path() / "big-body").string() + " " +
                   server.url() + "/api/v1/labclusters"),
              HasSubstr(" 413"));
  EXPECT_THAT(Curl(server.url() + "/" + std::string(3000, 'a')), HasSubstr(" 414"));
  server.Stop();
  EXPECT_THAT(Curl("--max-time 2 " + server.url() + "/healthz"), HasSubstr(" 000"));
}

TEST(HttpServerTest, ABearerTokenGuardsAllButHealthAndReadiness) {
  HttpServerLimits limits;
  limits.bearer_token = "0123456789abcdef0123";
  HttpServer server(
      "127.0.0.1:0",
      [](std::string_view, std::string_view path) {
        return ApiResponse{200, "text/plain", std::string(path) + "\n"};
      },
      limits);
  ASSERT_TRUE(server.Start().has_value());
  EXPECT_THAT(Curl(server.url() + "/metrics"), HasSubstr("bearer token is required"));
  EXPECT_THAT(Curl(server.url() + "/metrics"), HasSubstr(" 401"));
  EXPECT_THAT(Curl("-H 'Authorization: Bearer wrong-token-of-20ch' " + server.url() + "/metrics"),
              HasSubstr(" 401"));
  EXPECT_THAT(Curl("-H 'Authorization: Bearer 0123456789abcdef012' " + server.url() + "/metrics"),
              HasSubstr(" 401"))
      << "a prefix of the token is not the token";
  EXPECT_THAT(Curl("-H 'Authorization: Bearer 0123456789abcdef0123' " + server.url() + "/metrics"),
              HasSubstr("/metrics\n 200"));
  EXPECT_THAT(Curl(server.url() + "/healthz"), HasSubstr(" 200"));
  EXPECT_THAT(Curl(server.url() + "/readyz"), HasSubstr(" 200"));
  EXPECT_THAT(Curl("-D - " + server.url() + "/api/v1/labclusters"),
              HasSubstr("WWW-Authenticate: Bearer realm=\"vmlab\""));
}

TEST(HttpServerTest, AClientOverItsRateIsToldToSlowDown) {
  HttpServerLimits limits;
  limits.requests_per_second = 0.01;  // nothing refills during the test, however slow
  limits.burst = 5;
  limits.rate_limit_loopback = true;  // curl is on this host
  HttpServer server(
      "127.0.0.1:0", [](std::string_view, std::string_view) { return ApiResponse{}; }, limits);
  ASSERT_TRUE(server.Start().has_value());
  std::string codes;
  for (int i = 0; i < 8; ++i) {
    const std::string answer = Curl(server.url() + "/healthz");
    codes += answer.substr(answer.size() - 3) + " ";
  }
  EXPECT_EQ(codes, "200 200 200 200 200 429 429 429 ") << "a burst of 5, then the refill rate";
}

TEST(HttpServerTest, MoreRequestsAtOnceThanTheBoundAreRefused) {
  HttpServerLimits limits;
  limits.max_in_flight = 2;
  std::atomic<int> waiting{0};
  std::atomic<bool> release{false};
  HttpServer server(
      "127.0.0.1:0",
      [&](std::string_view, std::string_view) {
        ++waiting;
        while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        return ApiResponse{};
      },
      limits);
  ASSERT_TRUE(server.Start().has_value());
  std::vector<std::thread> slow;
  std::vector<std::string> answers(2);
  for (int i = 0; i < 2; ++i) {
    slow.emplace_back([&, i] { answers[static_cast<std::size_t>(i)] = Curl(server.url() + "/x"); });
  }
  while (waiting < 2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_THAT(Curl("-D - " + server.url() + "/y"),
              AllOf(HasSubstr(" 503"), HasSubstr("Retry-After: 1")));
  release = true;
  for (auto& t : slow) t.join();
  EXPECT_THAT(answers[0], HasSubstr(" 200"));
  EXPECT_THAT(answers[1], HasSubstr(" 200"));
  EXPECT_THAT(Curl(server.url() + "/z"), HasSubstr(" 200")) << "slots are given back";
}

TEST(HttpServerTest, LoopbackHostsAndTokenFiles) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("::ffff:127.0.0.1")) << "an IPv4 client of an IPv6 listener";
  EXPECT_FALSE(IsLoopbackHost("::ffff:192.0.2.10"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("192.0.2.10"));
  EXPECT_FALSE(IsLoopbackHost("lab.example"));
  testing_support::ScratchDir dir;
  dir.Write("token", "  0123456789abcdef0123 \nsecond line\n");
  EXPECT_EQ(ReadBearerToken(dir.path() / "token").value(), "0123456789abcdef0123");
  dir.Write("short", "abc\n");
  EXPECT_THAT(ReadBearerToken(dir.path() / "short").error().message,
              HasSubstr("at least 16 printable characters"));
  dir.Write("spaced", "0123456789 abcdef0123\n");
  EXPECT_FALSE(ReadBearerToken(dir.path() / "spaced").has_value());
  EXPECT_THAT(ReadBearerToken(dir.path() / "absent").error().message,
              HasSubstr("cannot read the token file"));
}

TEST(HttpServerTest, RejectsMalformedListenAddresses) {
  EXPECT_FALSE(ParseListenAddress("9440").has_value());
  EXPECT_FALSE(ParseListenAddress("127.0.0.1:99999").has_value());
  EXPECT_FALSE(ParseListenAddress("127.0.0.1:x").has_value());
  const auto ok = ParseListenAddress("127.0.0.1:9440");
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->first, "127.0.0.1");
  EXPECT_EQ(ok->second, 9440);
}

TEST(HttpServerTest, BusyPortIsAClearError) {
  HttpServer first("127.0.0.1:0", [](std::string_view, std::string_view) { return ApiResponse{}; });
  ASSERT_TRUE(first.Start().has_value());
  HttpServer second("127.0.0.1:" + std::to_string(first.port()),
                    [](std::string_view, std::string_view) { return ApiResponse{}; });
  const auto started = second.Start();
  ASSERT_FALSE(started.has_value());
  EXPECT_THAT(started.error().message, HasSubstr("cannot listen on 127.0.0.1:"));
}

}  // namespace
}  // namespace vmlab::controller
