#include "reconcilers/bootstrap/simulator.h"

#include <cpprest/json.h>
#include <fmt/format.h>

#include <algorithm>
#include <tuple>

namespace vmlab::reconcilers::bootstrap {
GuestSimulator::GuestSimulator(controller::Clock& clock, ProgressStore& progress,
                               SimulationOptions options)
    : clock_(clock), progress_(progress), options_(std::move(options)) {
  thread_ = std::thread([this] { Run(); });
}

GuestSimulator::~GuestSimulator() {
  {
    std::lock_guard guard(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

controller::Duration GuestSimulator::Seconds(double seconds) const {
  if (options_.speed <= 0) return controller::Duration::zero();
  return std::chrono::duration_cast<controller::Duration>(
      std::chrono::duration<double>(seconds / options_.speed));
}

void GuestSimulator::Boot(const std::string& lab, const std::string& node,
                          std::vector<std::string> phases, const std::string& token,
                          std::set<std::string> failing_phases, const std::string& bootstrap_token,
                          std::chrono::system_clock::time_point token_expiration) {
  {
    std::lock_guard guard(mutex_);
    const auto key = std::pair{lab, node};
    if (guests_.contains(key)) return;
    Guest guest;
    guest.phases = std::move(phases);
    guest.token = token;
    guest.failing = std::move(failing_phases);
    guest.bootstrap_token = bootstrap_token;
    guest.token_expiration = token_expiration;
    guest.due = clock_.Now();  // cloud-init's start is part of the first phase here
    guests_.emplace(key, std::move(guest));
  }
  wake_.notify_all();
}

void GuestSimulator::Forget(const std::string& lab, const std::string& node) {
  std::lock_guard guard(mutex_);
  guests_.erase({lab, node});
  if (const auto it = clusters_.find(lab); it != clusters_.end()) it->second->NodeDown(node);
}

void GuestSimulator::ForgetLab(const std::string& lab) {
  std::lock_guard guard(mutex_);
  std::erase_if(guests_, [&](const auto& entry) { return entry.first.first == lab; });
  clusters_.erase(lab);
}

SimulatedCluster& GuestSimulator::ClusterLocked(const std::string& lab) {
  auto& cluster = clusters_[lab];
  if (!cluster) cluster = std::make_shared<SimulatedCluster>(clock_);
  return *cluster;
}

std::shared_ptr<SimulatedCluster> GuestSimulator::Cluster(const std::string& lab) {
  std::lock_guard guard(mutex_);
  return ClusterLocked(lab).shared_from_this();
}

bool GuestSimulator::Playing(const std::string& lab, const std::string& node) const {
  std::lock_guard guard(mutex_);
  return guests_.contains({lab, node});
}

bool GuestSimulator::PrimaryDone(const std::string& lab) const {
  for (const auto& [key, guest] : guests_) {
    if (key.first == lab && !guest.phases.empty() && guest.phases.back() == "primary") {
      return guest.finished;
    }
  }
  return false;
}

// Advances one guest by one report; `reports` collects (lab, token, body).
void GuestSimulator::Step(const std::string& lab, const std::string& node, Guest& guest,
                          std::vector<std::tuple<std::string, std::string, std::string>>& reports) {
  const std::string& phase = guest.phases[guest.next];
  std::string state = "started";
  int exit_code = 0;
  std::string log;
  bool finishing = true;
  if (!guest.started) {
    finishing = false;
    guest.started = true;
    const auto it = options_.phase_seconds.find(phase);
    guest.due = clock_.Now() + Seconds(it == options_.phase_seconds.end() ? 10 : it->second);
  } else if ((phase == "secondary" || phase == "worker") && !PrimaryDone(lab)) {
    // A join waits for the endpoint, which answers once the primary is done.
    guest.due =
        clock_.Now() + std::max<controller::Duration>(Seconds(1), std::chrono::milliseconds(10));
    return;
  } else if (guest.failing.erase(phase) > 0) {
    state = "failed";
    exit_code = 1;
    log =
        fmt::format("simulated failure of phase {} on {} (annotation {}); the runner retries it\n",
                    phase, node, kSimulateFailureAnnotation);
  } else if (phase == "secondary" || phase == "worker") {
    if (auto joined = ClusterLocked(lab).Join(node, phase == "worker", guest.bootstrap_token);
        !joined) {
      state = "failed";
      exit_code = 1;
      log = joined.error().message + "\n";
    }
  } else if (phase == "primary") {
    ClusterLocked(lab).Init(node, guest.bootstrap_token, guest.token_expiration);
  }
  if (state == "failed") {
    guest.started = false;
    ++guest.attempt;
    guest.due = clock_.Now() + Seconds(options_.retry_seconds);
  } else if (finishing) {
    state = "done";
    guest.started = false;
    guest.attempt = 1;
    ++guest.next;
    guest.finished = guest.next == guest.phases.size();
    guest.due = clock_.Now();
  }
  web::json::value report;
  report["node"] = web::json::value::string(node);
  report["phase"] = web::json::value::string(phase);
  report["state"] = web::json::value::string(state);
  report["seq"] = web::json::value::number(++guest.seq);
  report["exitCode"] = web::json::value::number(exit_code);
  report["attempt"] =
      web::json::value::number(state == "failed" ? guest.attempt - 1 : guest.attempt);
  report["log"] = web::json::value::string(log);
  report["simulated"] = web::json::value::boolean(true);
  const std::string body = report.serialize();
  reports.emplace_back(lab, "Bearer " + guest.token, body);
}

void GuestSimulator::Run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    std::vector<std::tuple<std::string, std::string, std::string>> reports;
    controller::SteadyTime next = controller::SteadyTime::max();
    const controller::SteadyTime now = clock_.Now();
    for (auto& [key, guest] : guests_) {
      // A guest with several reports due sends them all now (speed 0).
      for (int steps = 0; steps < 16 && !guest.finished && guest.due <= now; ++steps) {
        Step(key.first, key.second, guest, reports);
      }
      if (!guest.finished) next = std::min(next, guest.due);
    }
    if (!reports.empty()) {
      lock.unlock();
      for (const auto& [lab, authorization, body] : reports) {
        (void)progress_.Report(lab, authorization, body);
      }
      lock.lock();
      continue;
    }
    if (next == controller::SteadyTime::max()) {
      wake_.wait(lock);
    } else {
      clock_.WaitUntil(wake_, lock, next);
    }
  }
}

}  // namespace vmlab::reconcilers::bootstrap
