// Latency from a manifest's close_write to the start of its reconcile, with
// the real pieces: inotify ManifestSource thread, WorkQueue, Manager workers,
// and the LabClusterReconciler creating the labs (1 control plane, 1 worker)
// on libvirt's test driver and writing status to a real state dir. Each edit
// flips spec.cache.apt: a new spec hash, so a real reconcile, without
// reshaping the lab. 100 labs
// in the folder; each of N edits rewrites one lab's file with a new worker
// count and waits for its reconcile. Prints median and p99, total and beyond
// the debounce. Usage: edit_latency_bench [EDITS] [DEBOUNCE_MS]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controller/manager.h"
#include "controller/manifest_source.h"
#include "controller/status_store.h"
#include "controller/work_queue.h"
#include "reconcilers/infrastructure/libvirt_hypervisor.h"
#include "reconcilers/labcluster_reconciler.h"

namespace {

namespace fs = std::filesystem;
using namespace vmlab;
using Clock = std::chrono::steady_clock;

// `apt` alternates between edits: a spec change that does not reshape the lab.
std::string Manifest(int i, bool apt) {
  return "apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata:\n  name: lab" +
         std::to_string(i) +
         "\nspec:\n  kubernetes:\n    version: \"1.30.4\"\n  network:\n    cidr: 172." +
         std::to_string(16 + i / 256) + "." + std::to_string(i % 256) +
         ".0/24\n  workers:\n    replicas: 1\n  cache:\n    apt: " + (apt ? "true" : "false") +
         "\n";
}

// Records when each key's reconcile starts, then delegates.
class TimedReconciler final : public controller::Reconciler {
 public:
  explicit TimedReconciler(controller::Reconciler& inner) : inner_(inner) {}
  Result<controller::ReconcileResult> Reconcile(const std::string& key) override {
    {
      std::lock_guard guard(mutex_);
      started_[key].push_back(Clock::now());
    }
    cv_.notify_all();
    return inner_.Reconcile(key);
  }
  // Waits for a reconcile of `key` that started after `after`.
  Clock::time_point WaitFor(const std::string& key, Clock::time_point after) {
    std::unique_lock lock(mutex_);
    Clock::time_point found{};
    cv_.wait_for(lock, std::chrono::seconds(10), [&] {
      for (auto t : started_[key]) {
        if (t >= after) {
          found = t;
          return true;
        }
      }
      return false;
    });
    return found;
  }

 private:
  controller::Reconciler& inner_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<Clock::time_point>> started_;
};

double Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  const auto index = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  const int edits = argc > 1 ? std::atoi(argv[1]) : 200;
  const int debounce_ms = argc > 2 ? std::atoi(argv[2]) : 200;
  const fs::path root = fs::temp_directory_path() / ("vmlab-bench-" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "watch");
  constexpr int kLabs = 100;
  for (int i = 0; i < kLabs; ++i)
    std::ofstream(root / "watch" / ("lab" + std::to_string(i) + ".yaml")) << Manifest(i, true);

  controller::RealClock clock;
  controller::WorkQueue queue(clock, controller::WorkQueueOptions{});
  controller::ManifestSourceOptions options;
  options.folder = root / "watch";
  options.debounce = std::chrono::milliseconds(debounce_ms);
  controller::ManifestSource source(clock, options,
                                    [&](const std::string& name) { queue.Add(name); });
  controller::StatusStore store(root / "state");
  (void)store.Load();
  reconcilers::infrastructure::LibvirtConnection libvirt("test:///default", nullptr);
  if (!libvirt.Ensure()) return 1;
  reconcilers::infrastructure::LibvirtHypervisor hypervisor(libvirt);
  reconcilers::InfrastructureReconciler infrastructure(hypervisor, (root / "state").string());
  reconcilers::bootstrap::SecretStore secrets(root / "state");
  reconcilers::LabClusterReconciler reconciler(source, store, infrastructure, secrets, {}, clock,
                                               nullptr);
  TimedReconciler timed(reconciler);
  controller::Manager manager(clock, queue, timed, nullptr, controller::ManagerOptions{},
                              [&] { return source.Names(); });
  source.Start();
  std::thread source_thread([&] { source.Run(); });
  manager.Start();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // initial reconciles settle

  std::vector<double> latencies_ms;
  for (int e = 0; e < edits; ++e) {
    const int lab = e % kLabs;
    const std::string key = "lab" + std::to_string(lab);
    const auto before = Clock::now();
    {
      std::ofstream out(root / "watch" / (key + ".yaml"), std::ios::trunc);
      out << Manifest(lab, (e / kLabs) % 2 == 1);
    }  // close_write happens here
    const auto written = Clock::now();
    const auto started = timed.WaitFor(key, written);
    if (started == Clock::time_point{}) {
      std::fprintf(stderr, "edit %d: no reconcile within 10 s\n", e);
      return 1;
    }
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(started - before).count());
  }
  source.Stop();
  source_thread.join();
  (void)manager.Stop(std::chrono::seconds(10));
  fs::remove_all(root);

  const double median = Percentile(latencies_ms, 0.5);
  const double p99 = Percentile(latencies_ms, 0.99);
  std::printf("edit -> reconcile start, %d edits over %d labs, debounce %d ms:\n", edits, kLabs,
              debounce_ms);
  std::printf("  median %.2f ms (%.2f ms beyond the debounce)\n", median, median - debounce_ms);
  std::printf("  p99    %.2f ms (%.2f ms beyond the debounce)\n", p99, p99 - debounce_ms);
  std::printf("  max    %.2f ms\n", Percentile(latencies_ms, 1.0));
  return 0;
}
