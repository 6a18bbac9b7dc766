#include "reconcilers/bootstrap/progress.h"

#include <cpprest/json.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <regex>

#include "metrics/bootstrap_metrics.h"

namespace vmlab::reconcilers::bootstrap {
namespace {

// Per node: a burst of 20 reports, then 5 a second (a phase sends two).
constexpr double kBurst = 20;
constexpr double kPerSecond = 5;

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::string RedactSecrets(std::string_view log) {
  static const std::regex kPrivateKey(
      "-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\\s\\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)");
  static const std::regex kToken("\\b[a-z0-9]{6}\\.[a-z0-9]{16}\\b");
  static const std::regex kCertificateKey("\\b[0-9a-f]{64}\\b");
  std::string out = std::regex_replace(std::string(log), kPrivateKey, "<redacted private key>");
  out = std::regex_replace(out, kToken, "<redacted token>");
  // A sha256 discovery hash (sha256:HEX64) is public; any other 64 hex digits
  // may be a certificate key.
  std::string result;
  auto begin = std::sregex_iterator(out.begin(), out.end(), kCertificateKey);
  std::size_t copied = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    const auto at = static_cast<std::size_t>(it->position());
    const bool hash = at >= 7 && out.compare(at - 7, 7, "sha256:") == 0;
    result.append(out, copied, at - copied);
    result += hash ? it->str() : "<redacted key>";
    copied = at + static_cast<std::size_t>(it->length());
  }
  result.append(out, copied, std::string::npos);
  return result;
}

std::string NodeToken(const std::string& progress_key, const std::string& node) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), progress_key.data(), static_cast<int>(progress_key.size()),
       reinterpret_cast<const unsigned char*>(node.data()), node.size(), digest, &length);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

std::string_view ToString(Verdict verdict) {
  switch (verdict) {
    case Verdict::kAccepted:
      return "accepted";
    case Verdict::kUnauthorized:
      return "unauthorized";
    case Verdict::kWrongNode:
      return "wrong_node";
    case Verdict::kReplay:
      return "replay";
    case Verdict::kMalformed:
      return "malformed";
    case Verdict::kOversized:
      return "oversized";
    case Verdict::kRateLimited:
      return "rate_limited";
    case Verdict::kUnknownLab:
      return "unknown_lab";
  }
  return "";
}

int HttpStatus(Verdict verdict) {
  switch (verdict) {
    case Verdict::kAccepted:
      return 202;
    case Verdict::kUnauthorized:
      return 401;
    case Verdict::kWrongNode:
      return 403;
    case Verdict::kReplay:
      return 409;
    case Verdict::kMalformed:
      return 400;
    case Verdict::kOversized:
      return 413;
    case Verdict::kRateLimited:
      return 429;
    case Verdict::kUnknownLab:
      return 404;
  }
  return 500;
}

ProgressStore::ProgressStore(controller::Clock& clock, OnChange on_change,
                             metrics::BootstrapMetrics* metrics)
    : clock_(clock), on_change_(std::move(on_change)), metrics_(metrics) {}

void ProgressStore::SetLab(const std::string& lab, LabIdentity identity) {
  std::lock_guard guard(mutex_);
  auto& state = labs_[lab];
  state.identity = std::move(identity);
  // Nodes the lab no longer has are forgotten.
  std::erase_if(state.nodes,
                [&](const auto& entry) { return !state.identity.roles.contains(entry.first); });
}

void ProgressStore::RemoveLab(const std::string& lab) {
  std::lock_guard guard(mutex_);
  labs_.erase(lab);
}

void ProgressStore::ResetNode(const std::string& lab, const std::string& node) {
  std::lock_guard guard(mutex_);
  if (auto it = labs_.find(lab); it != labs_.end()) {
    it->second.nodes.erase(node);
    it->second.rates.erase(node);
  }
}

Verdict ProgressStore::Count(Verdict verdict) {
  if (metrics_) metrics_->CountReport(ToString(verdict));
  return verdict;
}

std::optional<std::string> ProgressStore::Authenticate(const std::string& lab,
                                                       std::string_view authorization) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (!authorization.starts_with(kBearer)) return std::nullopt;
  const std::string_view token = authorization.substr(kBearer.size());
  std::lock_guard guard(mutex_);
  const auto it = labs_.find(lab);
  if (it == labs_.end()) return std::nullopt;
  std::optional<std::string> found;
  for (const auto& [node, role] : it->second.identity.roles) {
    if (ConstantTimeEqual(token, NodeToken(it->second.identity.progress_key, node))) found = node;
  }
  return found;
}

Verdict ProgressStore::Report(const std::string& lab, std::string_view authorization,
                              std::string_view body) {
  if (body.size() > kMaxReportBytes) return Count(Verdict::kOversized);
  web::json::value report;
  try {
    report = web::json::value::parse(std::string(body));
  } catch (const web::json::json_exception&) {
    return Count(Verdict::kMalformed);
  }
  auto text = [&](const char* key) -> std::optional<std::string> {
    if (!report.is_object() || !report.has_field(key) || !report.at(key).is_string()) {
      return std::nullopt;
    }
    return report.at(key).as_string();
  };
  auto number = [&](const char* key, std::int64_t fallback) -> std::optional<std::int64_t> {
    if (!report.is_object() || !report.has_field(key)) return fallback;
    if (!report.at(key).is_integer()) return std::nullopt;
    return report.at(key).as_number().to_int64();
  };
  const auto node = text("node");
  const auto phase = text("phase");
  const auto state = text("state");
  const auto seq = number("seq", -1);
  const auto exit_code = number("exitCode", 0);
  const auto attempt = number("attempt", 1);
  const auto log =
      report.is_object() && report.has_field("log") ? text("log") : std::optional<std::string>("");
  if (!node || !phase || !state || !seq || *seq < 0 || !exit_code || !attempt || !log ||
      (*state != "started" && *state != "done" && *state != "failed")) {
    return Count(Verdict::kMalformed);
  }
  const bool simulated = report.has_field("simulated") && report.at("simulated").is_boolean() &&
                         report.at("simulated").as_bool();

  std::string changed_lab;
  {
    std::lock_guard guard(mutex_);
    const auto it = labs_.find(lab);
    if (it == labs_.end()) return Count(Verdict::kUnknownLab);
    LabState& lab_state = it->second;
    constexpr std::string_view kBearer = "Bearer ";
    if (!authorization.starts_with(kBearer)) return Count(Verdict::kUnauthorized);
    const std::string_view token = authorization.substr(kBearer.size());
    if (!lab_state.identity.roles.contains(*node)) return Count(Verdict::kWrongNode);
    if (!ConstantTimeEqual(token, NodeToken(lab_state.identity.progress_key, *node))) {
      // A valid token of another node of the lab is a wrong node, not a stranger.
      for (const auto& [other, role] : lab_state.identity.roles) {
        if (ConstantTimeEqual(token, NodeToken(lab_state.identity.progress_key, other))) {
          return Count(Verdict::kWrongNode);
        }
      }
      return Count(Verdict::kUnauthorized);
    }
    const auto& phases = lab_state.identity.phases[*node];
    if (std::find(phases.begin(), phases.end(), *phase) == phases.end()) {
      return Count(Verdict::kMalformed);
    }
    const controller::SteadyTime now = clock_.Now();
    RateBucket& bucket = lab_state.rates[*node];
    if (bucket.refilled == controller::SteadyTime{}) {
      bucket.tokens = kBurst;
    } else {
      const double seconds = std::chrono::duration<double>(now - bucket.refilled).count();
      bucket.tokens = std::min(kBurst, bucket.tokens + seconds * kPerSecond);
    }
    bucket.refilled = now;
    if (bucket.tokens < 1) return Count(Verdict::kRateLimited);
    bucket.tokens -= 1;

    NodeProgress& progress = lab_state.nodes[*node];
    if (static_cast<std::uint64_t>(*seq) <= progress.seq && progress.seq != 0) {
      return Count(Verdict::kReplay);
    }
    const controller::WallTime wall = clock_.WallNow();
    if (*state == "started") progress.phase_started = wall;
    if (*state == "done" && progress.phase == *phase && progress.state == "started" && metrics_) {
      const auto cache = lab_state.identity.caches.find(*node);
      metrics_->ObservePhase(lab_state.identity.roles[*node], *phase,
                             cache == lab_state.identity.caches.end() ? "unknown" : cache->second,
                             std::chrono::duration<double>(wall - progress.phase_started).count());
    }
    if (*state == "failed" && metrics_) {
      metrics_->CountPhaseFailure(lab_state.identity.roles[*node], *phase);
    }
    progress.phase = *phase;
    progress.state = *state;
    progress.exit_code = static_cast<int>(*exit_code);
    progress.attempt = static_cast<int>(*attempt);
    progress.log_tail = RedactSecrets(
        log->size() > kMaxLogTailBytes ? log->substr(log->size() - kMaxLogTailBytes) : *log);
    progress.seq = static_cast<std::uint64_t>(*seq);
    progress.simulated = simulated;
    progress.updated = wall;
    progress.bootstrap_done = *state == "done" && !phases.empty() && *phase == phases.back();
    changed_lab = lab;
  }
  Count(Verdict::kAccepted);
  if (on_change_) on_change_(changed_lab);
  return Verdict::kAccepted;
}

std::map<std::string, NodeProgress> ProgressStore::Progress(const std::string& lab) const {
  std::lock_guard guard(mutex_);
  const auto it = labs_.find(lab);
  return it == labs_.end() ? std::map<std::string, NodeProgress>{} : it->second.nodes;
}

}  // namespace vmlab::reconcilers::bootstrap
