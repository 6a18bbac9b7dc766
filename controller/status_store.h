// StatusStore: what vmlab records about each lab that the world cannot tell
// it again: metadata.generation and the spec hash it belongs to, the status
// (conditions, nodes), and a bounded ring of events.
//
// One JSON file per lab under <state-dir>/labs/, written atomically (temp
// file, fsync, rename, fsync of the folder) and only when the record changed.
// Load() restores everything after a restart; a damaged file is set aside
// (renamed *.corrupt) and reported, never silently overwritten. Thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "controller/clock.h"
#include "crds/result.h"

namespace vmlab::controller {

struct Condition {
  std::string type;
  std::string status;  // "True", "False" or "Unknown"
  std::string reason;  // CamelCase
  std::string message;
  WallTime last_transition{};
  std::int64_t observed_generation = 0;
};

struct NodeStatus {
  std::string name;
  std::string role;  // "control-plane" or "worker"
  std::string ip;
  std::string domain_state;  // libvirt state in lower case, or "missing"
  std::string bootstrap_phase;
  bool ready = false;
};

struct DriftStatus {
  std::string kind;
  std::string object;
  std::string message;
  bool remediated = false;
};

struct Event {
  std::string type;  // "Normal" or "Warning"
  std::string reason;
  std::string message;
  int count = 1;
  WallTime first{};
  WallTime last{};
};

struct LabRecord {
  std::string name;
  std::int64_t generation = 0;  // metadata.generation: bumped when the spec hash changes
  std::string spec_hash;
  WallTime created{};
  std::int64_t observed_generation = 0;
  std::vector<Condition> conditions;
  std::vector<NodeStatus> nodes;
  std::string endpoint;
  std::string kubeconfig;
  std::vector<DriftStatus> drift;
  bool retain_volumes = false;  // deletionPolicy Retain of the last applied spec
  // The discovery hash (sha256 of the public key) of the CA the lab's nodes
  // were given; its secrets are never made anew while it is set.
  std::string trusted_ca;
  std::vector<Event> events;  // oldest first

  [[nodiscard]] const Condition* FindCondition(std::string_view type) const;
};

// Sets `condition` on `record`, keeping lastTransitionTime unless the status
// flips (metav1.Condition semantics). Returns true when status, reason or
// message changed.
bool SetCondition(LabRecord& record, Condition condition, WallTime now);

// Records an event; an event equal in type, reason and message to an earlier
// one is merged into it (count, last time). At most kMaxEvents are kept.
void AddEvent(LabRecord& record, std::string type, std::string reason, std::string message,
              WallTime now);
inline constexpr std::size_t kMaxEvents = 50;

class StatusStore {
 public:
  explicit StatusStore(std::filesystem::path state_dir);

  // Reads every lab file. Damaged files are renamed aside and listed in the error.
  [[nodiscard]] Status Load();
  [[nodiscard]] std::optional<LabRecord> Get(const std::string& name) const;
  [[nodiscard]] std::vector<LabRecord> List() const;
  // Applies `mutate` to the lab's record (a new one if absent) and persists it
  // if anything changed. On a write error the in-memory record is unchanged.
  [[nodiscard]] Status Update(const std::string& name,
                              const std::function<void(LabRecord&)>& mutate);
  // The same for a lab that has a record; nothing (no new record) otherwise,
  // decided under the store's lock (a concurrent Remove wins).
  [[nodiscard]] Status UpdateIfPresent(const std::string& name,
                                       const std::function<void(LabRecord&)>& mutate);
  [[nodiscard]] Status Remove(const std::string& name);

 private:
  [[nodiscard]] std::filesystem::path PathOf(const std::string& name) const;
  // Update's body; mutex_ held.
  [[nodiscard]] Status UpdateLocked(const std::string& name,
                                    const std::function<void(LabRecord&)>& mutate);

  const std::filesystem::path dir_;
  mutable std::mutex mutex_;
  std::map<std::string, LabRecord> records_;
};

// JSON forms shared by the store and the HTTP API.
[[nodiscard]] std::string FormatTimestamp(WallTime time);  // RFC 3339, UTC, seconds
[[nodiscard]] std::optional<WallTime> ParseTimestamp(const std::string& text);

// Writes `content` to `path` atomically: temp file, fsync, rename, fsync of the folder.
[[nodiscard]] Status WriteFileAtomically(const std::filesystem::path& path,
                                         std::string_view content);

// A reconcile of `key` past its deadline: a ReconcileTimedOut Warning event on
// the lab, when it has a record (a lab being deleted is not made again).
// Returns the write's error, if any.
[[nodiscard]] Status RecordReconcileTimeout(StatusStore& store, const std::string& key,
                                            Duration running, Duration deadline, WallTime now);

}  // namespace vmlab::controller
