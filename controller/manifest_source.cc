#include "controller/manifest_source.h"

#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "controller/manifest_files.h"
#include "crds/canonical.h"
#include "metrics/lab_metrics.h"

namespace vmlab::controller {
namespace {

namespace fs = std::filesystem;

constexpr std::uint32_t kWatchMask = IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO |
                                     IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF |
                                     IN_ONLYDIR;

std::string FirstErrors(const crds::ParsedDocument& doc) {
  std::vector<std::string> errors;
  for (const auto& d : doc.diagnostics) {
    if (d.severity == crds::Severity::kError) errors.push_back(crds::FormatDiagnostic(d));
  }
  if (errors.empty()) return "";
  std::string message = errors.front();
  if (errors.size() > 1) message += fmt::format(" (and {} more problems)", errors.size() - 1);
  return message;
}

}  // namespace

ManifestSource::ManifestSource(Clock& clock, ManifestSourceOptions options,
                               ChangeCallback on_change, metrics::LabMetrics* metrics)
    : clock_(clock),
      options_(std::move(options)),
      on_change_(std::move(on_change)),
      metrics_(metrics) {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

ManifestSource::~ManifestSource() {
  if (inotify_fd_ >= 0) close(inotify_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void ManifestSource::SetFolderError(std::string error) {
  std::lock_guard guard(mutex_);
  folder_error_ = std::move(error);
}

std::string ManifestSource::FolderError() const {
  std::lock_guard guard(mutex_);
  return folder_error_;
}

void ManifestSource::Start(const std::vector<std::string>& known_labs) {
  known_labs_ = known_labs;
  if (!TryWatch()) retry_at_ = clock_.Now() + options_.folder_retry;
}

void ManifestSource::StartDeletion(DesiredLab& lab) {
  deletion_due_[lab.name] = clock_.Now() + options_.deletion_grace;
  lab.deletion_at =
      clock_.WallNow() + std::chrono::duration_cast<WallTime::duration>(options_.deletion_grace);
  spdlog::info("lab {}: no manifest defines it; deleting it in {} s unless one does", lab.name,
               std::chrono::duration_cast<std::chrono::seconds>(options_.deletion_grace).count());
}

void ManifestSource::AdoptKnownLabs() {
  std::vector<std::string> adopted;
  {
    std::lock_guard guard(mutex_);
    for (const std::string& name : known_labs_) {
      if (desired_.contains(name)) continue;
      DesiredLab lab;
      lab.name = name;
      lab.spec_valid = false;
      lab.invalid_reason = "ManifestMissing";
      lab.invalid_message = "vmlab knows this lab from its state dir, but no manifest defines it";
      StartDeletion(lab);
      desired_[name] = std::move(lab);
      adopted.push_back(name);
    }
  }
  known_labs_.clear();
  PublishCounts();
  for (const auto& name : adopted) on_change_(name);
}

bool ManifestSource::TryWatch() {
  if (inotify_fd_ < 0) inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) {
    SetFolderError(fmt::format("cannot start inotify: {}", std::strerror(errno)));
    return false;
  }
  watch_ = inotify_add_watch(inotify_fd_, options_.folder.c_str(), kWatchMask);
  if (watch_ < 0) {
    const int error = errno;
    std::string message =
        error == ENOENT || error == ENOTDIR
            ? fmt::format(
                  "watch folder {} does not exist or is not a folder; create it (vmlab "
                  "retries every {} s)",
                  options_.folder.string(),
                  std::chrono::duration_cast<std::chrono::seconds>(options_.folder_retry).count())
            : fmt::format("cannot watch {}: {}; vmlab retries", options_.folder.string(),
                          std::strerror(error));
    if (message != FolderError()) spdlog::error("{}", message);
    SetFolderError(std::move(message));
    return false;
  }
  if (!FolderError().empty()) spdlog::info("watching {} again", options_.folder.string());
  SetFolderError("");
  // Events from now on are seen; a scan catches up on everything before.
  Rescan();
  return true;
}

void ManifestSource::CloseWatch(std::string why) {
  if (watch_ >= 0) inotify_rm_watch(inotify_fd_, watch_);
  watch_ = -1;
  spdlog::error("{}", why);
  SetFolderError(std::move(why));
  retry_at_ = clock_.Now() + options_.folder_retry;
}

void ManifestSource::MarkDirty(const std::string& name, SteadyTime due) {
  auto [it, inserted] = dirty_.try_emplace(name, due);
  if (!inserted) it->second = std::max(it->second, due);  // quiet period restarts on each event
}

void ManifestSource::ScheduleRescan(SteadyTime due) {
  if (!rescan_at_ || *rescan_at_ > due) rescan_at_ = due;
}

void ManifestSource::ReadEvents() {
  alignas(inotify_event) std::array<char, 64 * 1024> buffer;
  while (true) {
    const ssize_t length = read(inotify_fd_, buffer.data(), buffer.size());
    if (length <= 0) return;  // EAGAIN: drained
    const SteadyTime due = clock_.Now() + options_.debounce;
    for (ssize_t offset = 0; offset < length;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer.data() + offset);
      offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      if (event->mask & IN_Q_OVERFLOW) {
        spdlog::warn("inotify queue overflowed; rescanning {}", options_.folder.string());
        ScheduleRescan(due);
        continue;
      }
      if (event->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
        if (event->wd == watch_) {
          CloseWatch(
              fmt::format("watch folder {} was removed or moved; labs are kept; vmlab "
                          "retries",
                          options_.folder.string()));
        }
        continue;
      }
      if (event->len == 0) continue;
      const std::string name(event->name);
      if (ClassifyFileName(name) != FileKind::kManifest) continue;
      MarkDirty(name, due);
    }
  }
}

void ManifestSource::Rescan() {
  std::error_code ec;
  std::set<std::string> present;
  for (fs::directory_iterator it(options_.folder, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (ClassifyFileName(name) != FileKind::kManifest) continue;
    std::error_code type_ec;
    if (it->is_directory(type_ec)) continue;
    present.insert(name);
  }
  if (ec) {
    CloseWatch(fmt::format("cannot list watch folder {}: {}; vmlab retries",
                           options_.folder.string(), ec.message()));
    return;
  }
  bool changed = false;
  for (const auto& name : present) changed |= Reload(name);
  for (auto it = files_.begin(); it != files_.end();) {
    if (present.contains(it->first)) {
      ++it;
    } else {
      it = files_.erase(it);
      changed = true;
    }
  }
  rescan_at_.reset();
  if (changed || !initial_scan_done_) Recompute();
  if (!initial_scan_done_) {
    spdlog::info("scanned {}: {} manifest files", options_.folder.string(), files_.size());
    AdoptKnownLabs();
    initial_scan_done_ = true;
  }
}

bool ManifestSource::Reload(const std::string& name) {
  const fs::path path = options_.folder / name;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return files_.erase(name) > 0;
  }
  const std::string label = path.string();
  std::vector<crds::ParsedDocument> documents;
  if (auto loaded = LoadManifestFile(path, label)) {
    documents = std::move(*loaded);
  } else {
    // An unreadable file keeps its labs, like an unparsable one.
    crds::ParsedDocument unreadable;
    unreadable.file = label;
    unreadable.diagnostics.push_back(
        {crds::Severity::kError, label, {1, 1}, "", loaded.error().message});
    documents.push_back(std::move(unreadable));
  }
  // Hashed once here: Recompute runs over every file on each change.
  std::vector<std::string> hashes;
  for (const auto& doc : documents)
    hashes.push_back(doc.object ? crds::SpecHash(doc.object->spec) : "");
  FileState& state = files_[name];
  // Documents compare by what they say (spec hash, name, problems), not by identity.
  auto same = [](const crds::ParsedDocument& a, const crds::ParsedDocument& b) {
    if (a.name != b.name || a.valid() != b.valid() ||
        a.diagnostics.size() != b.diagnostics.size() ||
        (a.object && b.object && a.object->metadata.labels != b.object->metadata.labels)) {
      return false;
    }
    for (std::size_t i = 0; i < a.diagnostics.size(); ++i) {
      if (crds::FormatDiagnostic(a.diagnostics[i]) != crds::FormatDiagnostic(b.diagnostics[i])) {
        return false;
      }
    }
    return true;
  };
  const bool changed =
      state.documents.size() != documents.size() || state.spec_hashes != hashes ||
      !std::equal(documents.begin(), documents.end(), state.documents.begin(), same);
  state.documents = std::move(documents);
  state.spec_hashes = std::move(hashes);
  if (changed) {
    // What is wrong, where, in the log as well as in status (once per change).
    for (const auto& doc : state.documents) {
      for (const auto& d : doc.diagnostics) {
        if (d.severity == crds::Severity::kError) {
          spdlog::warn("{}{}", crds::FormatDiagnostic(d),
                       doc.name.empty() ? "" : fmt::format(" (lab {})", doc.name));
        }
      }
    }
  }
  return changed;
}

void ManifestSource::Recompute() {
  // Cross-document rules need every file's documents together.
  std::vector<crds::ParsedDocument> all;
  std::vector<const std::string*> hashes;  // parallel to `all`
  std::set<std::string> unparsable_files;  // files whose labs cannot be told
  for (const auto& [name, state] : files_) {
    for (std::size_t i = 0; i < state.documents.size(); ++i) {
      const auto& doc = state.documents[i];
      all.push_back(doc);
      hashes.push_back(&state.spec_hashes[i]);
      if (doc.name.empty() && !doc.valid()) unparsable_files.insert(doc.file);
    }
  }
  crds::ValidateManifestSet(all);

  std::map<std::string, std::vector<std::size_t>> by_name;  // indexes into `all`
  valid_docs_ = 0;
  invalid_docs_ = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    (all[i].valid() ? valid_docs_ : invalid_docs_)++;
    if (!all[i].name.empty()) by_name[all[i].name].push_back(i);
  }

  std::set<std::string> names;
  std::vector<std::string> changed;
  {
    std::lock_guard guard(mutex_);
    for (const auto& [name, lab] : desired_) names.insert(name);
  }
  for (const auto& [name, docs] : by_name) names.insert(name);

  for (const std::string& name : names) {
    std::optional<DesiredLab> old;
    {
      std::lock_guard guard(mutex_);
      if (auto it = desired_.find(name); it != desired_.end()) old = it->second;
    }
    DesiredLab lab;
    if (old) {
      lab = *old;
    } else {
      lab.name = name;
    }
    const auto found = by_name.find(name);
    if (found != by_name.end()) {
      const auto& docs = found->second;
      deletion_due_.erase(name);
      lab.deletion_at.reset();
      const crds::ParsedDocument& doc = all[docs.front()];
      lab.source = doc.file;
      if (docs.size() == 1 && doc.valid()) {
        lab.spec = doc.object;
        lab.spec_hash = *hashes[docs.front()];
        lab.spec_valid = true;
        lab.invalid_reason.clear();
        lab.invalid_message.clear();
      } else {
        lab.spec_valid = false;
        lab.invalid_reason = docs.size() > 1 ? "DuplicateName" : "InvalidSpec";
        lab.invalid_message = FirstErrors(doc);
      }
    } else if (old && unparsable_files.contains(old->source)) {
      // The file is there but unreadable as manifests: keep the lab as it was.
      lab.spec_valid = false;
      lab.invalid_reason = "InvalidSpec";
      for (const auto& doc : files_.at(fs::path(old->source).filename().string()).documents) {
        if (!doc.valid()) {
          lab.invalid_message = FirstErrors(doc);
          break;
        }
      }
      deletion_due_.erase(name);
      lab.deletion_at.reset();
    } else if (!lab.spec && !deletion_due_.contains(name)) {
      // Never had a good spec: nothing to keep or delete.
      std::lock_guard guard(mutex_);
      desired_.erase(name);
      changed.push_back(name);
      continue;
    } else if (!deletion_due_.contains(name)) {
      StartDeletion(lab);
    }
    if (!old || !(*old == lab)) {
      std::lock_guard guard(mutex_);
      desired_[name] = lab;
      changed.push_back(name);
    }
  }
  PublishCounts();
  for (const auto& name : changed) on_change_(name);
}

void ManifestSource::ExpireDeletions() {
  const SteadyTime now = clock_.Now();
  std::vector<std::string> expired;
  for (auto it = deletion_due_.begin(); it != deletion_due_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    expired.push_back(it->first);
    it = deletion_due_.erase(it);
  }
  if (expired.empty()) return;
  {
    std::lock_guard guard(mutex_);
    for (const auto& name : expired) desired_.erase(name);
  }
  for (const auto& name : expired) {
    spdlog::info("lab {}: manifest gone for the whole grace period; deleting", name);
    on_change_(name);
  }
  PublishCounts();
}

void ManifestSource::PublishCounts() {
  if (metrics_) metrics_->SetManifests(valid_docs_, invalid_docs_, deletion_due_.size());
}

SteadyTime ManifestSource::NextDue() const {
  SteadyTime next = SteadyTime::max();
  for (const auto& [name, due] : dirty_) next = std::min(next, due);
  for (const auto& [name, due] : deletion_due_) next = std::min(next, due);
  if (rescan_at_) next = std::min(next, *rescan_at_);
  if (retry_at_) next = std::min(next, *retry_at_);
  return next;
}

void ManifestSource::Step(Duration max_wait) {
  const SteadyTime now = clock_.Now();
  const SteadyTime next = NextDue();
  Duration wait = max_wait;
  if (next != SteadyTime::max())
    wait = std::clamp<Duration>(next - now, Duration::zero(), max_wait);
  std::array<pollfd, 2> fds{pollfd{inotify_fd_, POLLIN, 0}, pollfd{wake_fd_, POLLIN, 0}};
  const auto timeout_ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
  if (poll(fds.data(), fds.size(), static_cast<int>(timeout_ms)) > 0) {
    if (fds[0].revents & POLLIN) ReadEvents();
    if (fds[1].revents & POLLIN) {
      std::uint64_t value = 0;
      [[maybe_unused]] auto ignored = read(wake_fd_, &value, sizeof value);
    }
  }

  const SteadyTime after = clock_.Now();
  if (retry_at_ && *retry_at_ <= after) {
    retry_at_.reset();
    if (!TryWatch()) retry_at_ = after + options_.folder_retry;
  }
  if (rescan_at_ && *rescan_at_ <= after && watch_ >= 0) Rescan();
  bool changed = false;
  for (auto it = dirty_.begin(); it != dirty_.end();) {
    if (it->second > after || watch_ < 0) {
      ++it;
      continue;
    }
    changed |= Reload(it->first);
    it = dirty_.erase(it);
  }
  if (changed) Recompute();
  ExpireDeletions();
}

void ManifestSource::Run() {
  while (!stopping_) Step(std::chrono::seconds(60));
}

void ManifestSource::Stop() {
  stopping_ = true;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto ignored = write(wake_fd_, &one, sizeof one);
}

std::optional<DesiredLab> ManifestSource::Get(const std::string& name) const {
  std::lock_guard guard(mutex_);
  const auto it = desired_.find(name);
  if (it == desired_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> ManifestSource::Names() const {
  std::lock_guard guard(mutex_);
  std::vector<std::string> names;
  for (const auto& [name, lab] : desired_) names.push_back(name);
  return names;
}

}  // namespace vmlab::controller
