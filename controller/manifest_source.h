// ManifestSource: the watch folder, turned into DesiredState.
//
// inotify reports changes to manifest files (see manifest_files.h for which
// names count); a change is read after a quiet period (debounce), so an
// editor's save-by-rename or a burst of writes is read once. The folder is
// scanned fully at start and after an inotify queue overflow. Rules:
// - an invalid document keeps its lab's last good spec in force (spec_valid
//   false, with the validator's message); a file that cannot be parsed at all
//   keeps every lab it defined;
// - a name defined twice (or labs with overlapping networks) are all reported
//   invalid and none of their changes is applied until fixed;
// - a lab whose manifest disappears is deleted only after the grace period; a
//   manifest that defines it again in time cancels the deletion;
// - a missing or unreadable folder is reported and retried; labs are kept.
// Every change to a lab's DesiredLab calls `on_change(name)`.
//
// Threading: Step/Run on one thread; Get/Names/status accessors from any.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "controller/clock.h"
#include "controller/desired_state.h"
#include "crds/labcluster_parse.h"

namespace vmlab::metrics {
class LabMetrics;
}  // namespace vmlab::metrics

namespace vmlab::controller {

struct ManifestSourceOptions {
  std::filesystem::path folder;
  Duration debounce = std::chrono::milliseconds(200);
  Duration deletion_grace = std::chrono::seconds(30);
  Duration folder_retry = std::chrono::seconds(2);
};

class ManifestSource final : public DesiredState {
 public:
  using ChangeCallback = std::function<void(const std::string& name)>;

  // `metrics` may be null; it and `clock` must outlive the source.
  ManifestSource(Clock& clock, ManifestSourceOptions options, ChangeCallback on_change,
                 metrics::LabMetrics* metrics = nullptr);
  ~ManifestSource() override;
  ManifestSource(const ManifestSource&) = delete;
  ManifestSource& operator=(const ManifestSource&) = delete;

  // Watches the folder and scans it. A missing folder is not fatal: it is
  // reported by FolderError() and retried by Step. `known_labs` are labs
  // vmlab recorded before (state dir): one that no manifest defines after the
  // first scan is deleted after the grace period, like a removed manifest.
  void Start(const std::vector<std::string>& known_labs = {});
  // Waits up to `max_wait` (real time) for folder events, then does what is
  // due by the clock: debounced reads, rescans, folder retries, deletions.
  void Step(Duration max_wait);
  // Steps until Stop() is called (from another thread).
  void Run();
  void Stop();

  // True once the folder has been scanned completely at least once.
  [[nodiscard]] bool InitialScanDone() const { return initial_scan_done_; }
  // Why the folder cannot be watched, or empty.
  [[nodiscard]] std::string FolderError() const;

  [[nodiscard]] std::optional<DesiredLab> Get(const std::string& name) const override;
  [[nodiscard]] std::vector<std::string> Names() const override;

 private:
  struct FileState {
    std::vector<crds::ParsedDocument> documents;
    std::vector<std::string> spec_hashes;  // per document; empty when it has no object
  };

  bool TryWatch();
  void CloseWatch(std::string why);
  void ReadEvents();
  void MarkDirty(const std::string& name, SteadyTime due);
  void ScheduleRescan(SteadyTime due);
  void Rescan();
  // Re-reads `name` from disk into files_; true when its documents changed.
  bool Reload(const std::string& name);
  void Recompute();
  void ExpireDeletions();
  void StartDeletion(DesiredLab& lab);
  void AdoptKnownLabs();
  void PublishCounts();
  [[nodiscard]] SteadyTime NextDue() const;
  void SetFolderError(std::string error);

  Clock& clock_;
  const ManifestSourceOptions options_;
  const ChangeCallback on_change_;
  metrics::LabMetrics* const metrics_;

  int inotify_fd_ = -1;
  int watch_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> initial_scan_done_{false};
  std::optional<SteadyTime> retry_at_;
  std::optional<SteadyTime> rescan_at_;
  std::map<std::string, SteadyTime> dirty_;  // file name -> when to read it
  std::map<std::string, FileState> files_;   // file name -> its parsed documents
  std::map<std::string, SteadyTime> deletion_due_;
  std::vector<std::string> known_labs_;  // adopted after the first complete scan
  std::size_t valid_docs_ = 0;           // from the last Recompute, for the metrics
  std::size_t invalid_docs_ = 0;

  mutable std::mutex mutex_;  // guards desired_ and folder_error_
  std::map<std::string, DesiredLab> desired_;
  std::string folder_error_;
};

}  // namespace vmlab::controller
