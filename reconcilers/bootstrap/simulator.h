// Simulated guests (`vmlab controller --simulate-guests`, libvirt's test
// driver only): for each node whose domain starts, plays its phase runner —
// each phase "started" then "done" after a realistic duration — and posts the
// reports through ProgressStore::Report with the node's real token, exactly
// as a guest would. A lab annotation `vmlab.io/simulate-failure: NODE/PHASE[,...]`
// makes that phase fail once (exit 1, a log tail saying it is simulated); the
// runner then retries it, as the real one does. The lab's Kubernetes API is a
// SimulatedCluster: the primary's last phase is its `kubeadm init`, the
// others' their `kubeadm join` (which fails, and is retried, when the token
// is unknown or expired). A demo and test tool: every report is marked
// simulated, and no claim about Kubernetes rests on it.
// Thread-safe; one thread plays every node.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "controller/clock.h"
#include "reconcilers/bootstrap/progress.h"
#include "reconcilers/bootstrap/simulated_cluster.h"

namespace vmlab::reconcilers::bootstrap {

inline constexpr const char* kSimulateFailureAnnotation = "vmlab.io/simulate-failure";
// `vmlab.io/simulate-blocked-eviction: NODE[,...]`: a PodDisruptionBudget in
// the simulated cluster allows no eviction from these nodes.
inline constexpr const char* kSimulateBlockedEvictionAnnotation =
    "vmlab.io/simulate-blocked-eviction";

struct SimulationOptions {
  // Seconds of each phase at speed 1 (about what a node with a nearby
  // package cache takes); divided by `speed`, and 0 when speed is 0 ("as
  // fast as the controller goes").
  std::map<std::string, double> phase_seconds = {{"base", 15},       {"endpoint", 5},
                                                 {"kubernetes", 20}, {"primary", 30},
                                                 {"secondary", 20},  {"worker", 15}};
  double retry_seconds = 5;  // the runner's pause before retrying a failed phase
  double speed = 1;
};

class GuestSimulator {
 public:
  GuestSimulator(controller::Clock& clock, ProgressStore& progress, SimulationOptions options);
  ~GuestSimulator();
  GuestSimulator(const GuestSimulator&) = delete;
  GuestSimulator& operator=(const GuestSimulator&) = delete;

  // `node`'s domain started: plays its phases from the first, unless this
  // node is already being played (a restarted guest does not run cloud-init again).
  // `bootstrap_token` is the one in its seed (valid until `token_expiration`).
  void Boot(const std::string& lab, const std::string& node, std::vector<std::string> phases,
            const std::string& token, std::set<std::string> failing_phases,
            const std::string& bootstrap_token = "",
            std::chrono::system_clock::time_point token_expiration = {});
  // The node's domain is gone or was created anew: its guest stops (its
  // Node, if it joined, turns NotReady).
  void Forget(const std::string& lab, const std::string& node);
  void ForgetLab(const std::string& lab);
  [[nodiscard]] bool Playing(const std::string& lab, const std::string& node) const;
  // The lab's simulated Kubernetes API (made on first use; kept until ForgetLab).
  [[nodiscard]] std::shared_ptr<SimulatedCluster> Cluster(const std::string& lab);

 private:
  struct Guest {
    std::vector<std::string> phases;
    std::string token;
    std::string bootstrap_token;
    std::chrono::system_clock::time_point token_expiration;
    std::set<std::string> failing;  // phases still to fail once
    std::size_t next = 0;           // phase index
    bool started = false;           // the current phase has reported "started"
    int attempt = 1;
    std::uint64_t seq = 0;
    controller::SteadyTime due{};
    bool finished = false;
  };
  void Run();
  [[nodiscard]] SimulatedCluster& ClusterLocked(const std::string& lab);  // mutex_ held
  // The lab's primary control plane has finished its phases (mutex_ held).
  [[nodiscard]] bool PrimaryDone(const std::string& lab) const;
  void Step(const std::string& lab, const std::string& node, Guest& guest,
            std::vector<std::tuple<std::string, std::string, std::string>>& reports);
  controller::Duration Seconds(double seconds) const;

  controller::Clock& clock_;
  ProgressStore& progress_;
  const SimulationOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::map<std::pair<std::string, std::string>, Guest> guests_;
  std::map<std::string, std::shared_ptr<SimulatedCluster>> clusters_;
  std::thread thread_;
};

}  // namespace vmlab::reconcilers::bootstrap
