// Node progress: what each node's phase runner reports (phase started, done,
// failed with its exit code and the end of its log), checked and kept per
// lab. Reports arrive as HTTP bodies from the nodes (or from the guest
// simulator, through the same check); ProgressStore::Report authenticates
// them with the node's token, bounds their size and rate, refuses reports for
// another node, malformed ones and replays (a sequence number that does not
// grow), and counts every verdict. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/clock.h"
#include "reconcilers/bootstrap/lab_secrets.h"

namespace vmlab::metrics {
class BootstrapMetrics;
}  // namespace vmlab::metrics

namespace vmlab::reconcilers::bootstrap {

inline constexpr std::size_t kMaxReportBytes = 16 * 1024;
inline constexpr std::size_t kMaxLogTailBytes = 4 * 1024;

// The token a node presents (Authorization: Bearer TOKEN): HMAC-SHA256 of its
// name under the lab's progress key, hex. Derived, so nothing more is stored.
[[nodiscard]] std::string NodeToken(const std::string& progress_key, const std::string& node);

// A node's log text with what kubeadm and openssl print that must not travel
// further (status, events, the controller's log) replaced: bootstrap tokens
// (abcdef.0123456789abcdef), certificate keys (--certificate-key HEX64) and
// PEM private key blocks.
[[nodiscard]] std::string RedactSecrets(std::string_view log);

struct NodeProgress {
  std::string phase;     // the phase last reported
  std::string state;     // started | done | failed
  int exit_code = 0;     // of a failed phase
  std::string log_tail;  // of a failed phase, secrets redacted
  int attempt = 1;       // of the phase (the runner retries failed phases)
  bool bootstrap_done = false;
  bool simulated = false;
  std::uint64_t seq = 0;
  controller::WallTime phase_started{};
  controller::WallTime updated{};
};

enum class Verdict {
  kAccepted,
  kUnauthorized,  // no or wrong token
  kWrongNode,     // not a node of this lab, or a token for another node
  kReplay,        // sequence number not above the last one
  kMalformed,
  kOversized,
  kRateLimited,
  kUnknownLab,
};
[[nodiscard]] std::string_view ToString(Verdict verdict);
// HTTP status for a verdict: 202, 401, 403, 409, 400, 413, 429, 404.
[[nodiscard]] int HttpStatus(Verdict verdict);

// What the store needs to know about a lab to check its reports.
struct LabIdentity {
  std::string progress_key;
  std::map<std::string, std::string> roles;                // node -> control-plane | worker
  std::map<std::string, std::vector<std::string>> phases;  // node -> its phases in order
  // node -> what serves its downloads: golden (its disk's golden image),
  // caches (the lab's apt cache or registry mirrors), none; absent: unknown.
  std::map<std::string, std::string> caches;
};

class ProgressStore {
 public:
  using OnChange = std::function<void(const std::string& lab)>;
  // `metrics` may be null.
  ProgressStore(controller::Clock& clock, OnChange on_change, metrics::BootstrapMetrics* metrics);

  // The lab's nodes and key (set by the reconciler before its nodes boot).
  void SetLab(const std::string& lab, LabIdentity identity);
  void RemoveLab(const std::string& lab);
  // Forgets a node's progress (its domain was created anew: it starts over).
  void ResetNode(const std::string& lab, const std::string& node);

  // Checks and records one report. `authorization` is the Authorization
  // header's value; `body` the JSON report:
  //   {"node": N, "phase": P, "state": "started|done|failed", "seq": S,
  //    "exitCode": C, "log": "...", "attempt": A, "simulated": bool}
  Verdict Report(const std::string& lab, std::string_view authorization, std::string_view body);

  [[nodiscard]] std::map<std::string, NodeProgress> Progress(const std::string& lab) const;
  // The node of `lab` whose token `authorization` ("Bearer TOKEN") carries;
  // nullopt for none (compared in constant time).
  [[nodiscard]] std::optional<std::string> Authenticate(const std::string& lab,
                                                        std::string_view authorization) const;
  // Counts a report refused before it reached Report (e.g. too large to read).
  void CountRefused(Verdict verdict) { (void)Count(verdict); }

 private:
  struct RateBucket {
    double tokens = 0;
    controller::SteadyTime refilled{};
  };
  struct LabState {
    LabIdentity identity;
    std::map<std::string, NodeProgress> nodes;
    std::map<std::string, RateBucket> rates;
  };
  Verdict Count(Verdict verdict);

  controller::Clock& clock_;
  const OnChange on_change_;
  metrics::BootstrapMetrics* const metrics_;
  mutable std::mutex mutex_;
  std::map<std::string, LabState> labs_;
};

}  // namespace vmlab::reconcilers::bootstrap
