#include "controller/status_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "controller/logging.h"
#include "controller/status_json.h"

namespace vmlab::controller {
namespace {

namespace fs = std::filesystem;
using web::json::value;

value TimeJson(WallTime time) { return value::string(FormatTimestamp(time)); }

WallTime TimeFrom(const value& object, const char* key) {
  if (!object.has_string_field(key)) return WallTime{};
  return ParseTimestamp(object.at(key).as_string()).value_or(WallTime{});
}

std::string StringFrom(const value& object, const char* key) {
  return object.has_string_field(key) ? object.at(key).as_string() : std::string();
}

std::int64_t IntFrom(const value& object, const char* key) {
  return object.has_number_field(key) ? object.at(key).as_number().to_int64() : 0;
}

value ToJson(const LabRecord& r) {
  value out = value::object(true);
  out["name"] = value::string(r.name);
  out["generation"] = value::number(r.generation);
  out["specHash"] = value::string(r.spec_hash);
  out["creationTimestamp"] = TimeJson(r.created);
  out["observedGeneration"] = value::number(r.observed_generation);
  out["endpoint"] = value::string(r.endpoint);
  out["kubeconfig"] = value::string(r.kubeconfig);
  out["conditions"] = ArrayJson(r.conditions);
  out["nodes"] = ArrayJson(r.nodes);
  out["drift"] = ArrayJson(r.drift);
  out["retainVolumes"] = value::boolean(r.retain_volumes);
  if (!r.trusted_ca.empty()) out["trustedCA"] = value::string(r.trusted_ca);
  out["events"] = ArrayJson(r.events);
  return out;
}

LabRecord FromJson(const value& in) {
  LabRecord r;
  r.name = StringFrom(in, "name");
  r.generation = IntFrom(in, "generation");
  r.spec_hash = StringFrom(in, "specHash");
  r.created = TimeFrom(in, "creationTimestamp");
  r.observed_generation = IntFrom(in, "observedGeneration");
  r.endpoint = StringFrom(in, "endpoint");
  r.kubeconfig = StringFrom(in, "kubeconfig");
  if (in.has_array_field("conditions")) {
    for (const value& item : in.at("conditions").as_array()) {
      r.conditions.push_back({StringFrom(item, "type"), StringFrom(item, "status"),
                              StringFrom(item, "reason"), StringFrom(item, "message"),
                              TimeFrom(item, "lastTransitionTime"),
                              IntFrom(item, "observedGeneration")});
    }
  }
  if (in.has_array_field("nodes")) {
    for (const value& item : in.at("nodes").as_array()) {
      r.nodes.push_back({StringFrom(item, "name"), StringFrom(item, "role"), StringFrom(item, "ip"),
                         StringFrom(item, "domainState"), StringFrom(item, "bootstrapPhase"),
                         item.has_boolean_field("ready") && item.at("ready").as_bool()});
    }
  }
  if (in.has_array_field("drift")) {
    for (const value& item : in.at("drift").as_array()) {
      r.drift.push_back({StringFrom(item, "kind"), StringFrom(item, "object"),
                         StringFrom(item, "message"),
                         item.has_boolean_field("remediated") && item.at("remediated").as_bool()});
    }
  }
  r.retain_volumes = in.has_boolean_field("retainVolumes") && in.at("retainVolumes").as_bool();
  r.trusted_ca = StringFrom(in, "trustedCA");
  if (in.has_array_field("events")) {
    for (const value& item : in.at("events").as_array()) {
      r.events.push_back({StringFrom(item, "type"), StringFrom(item, "reason"),
                          StringFrom(item, "message"), static_cast<int>(IntFrom(item, "count")),
                          TimeFrom(item, "firstTimestamp"), TimeFrom(item, "lastTimestamp")});
    }
  }
  return r;
}

std::string Serialize(const LabRecord& record) { return ToJson(record).serialize() + "\n"; }

}  // namespace

const Condition* LabRecord::FindCondition(std::string_view type) const {
  for (const Condition& c : conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

bool SetCondition(LabRecord& record, Condition condition, WallTime now) {
  for (Condition& existing : record.conditions) {
    if (existing.type != condition.type) continue;
    const bool changed = existing.status != condition.status ||
                         existing.reason != condition.reason ||
                         existing.message != condition.message;
    condition.last_transition =
        existing.status == condition.status ? existing.last_transition : now;
    existing = std::move(condition);
    return changed;
  }
  condition.last_transition = now;
  record.conditions.push_back(std::move(condition));
  return true;
}

void AddEvent(LabRecord& record, std::string type, std::string reason, std::string message,
              WallTime now) {
  auto same = std::find_if(record.events.begin(), record.events.end(), [&](const Event& e) {
    return e.type == type && e.reason == reason && e.message == message;
  });
  {
    // Events are log lines too (with the lab and reconcile of the thread);
    // repeats only at debug, so a condition that persists does not flood the log.
    const LogFields fields({{"event", reason}, {"type", type}});
    const auto level = same != record.events.end() ? spdlog::level::debug
                       : type == "Warning"         ? spdlog::level::warn
                                                   : spdlog::level::info;
    spdlog::log(level, "{}", message);
  }
  if (same != record.events.end()) {
    Event merged = *same;
    ++merged.count;
    merged.last = now;
    record.events.erase(same);
    record.events.push_back(std::move(merged));
    return;
  }
  record.events.push_back({std::move(type), std::move(reason), std::move(message), 1, now, now});
  if (record.events.size() > kMaxEvents) {
    record.events.erase(
        record.events.begin(),
        record.events.begin() + static_cast<std::ptrdiff_t>(record.events.size() - kMaxEvents));
  }
}

std::string FormatTimestamp(WallTime time) {
  if (time == WallTime{}) return "";
  const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

std::optional<WallTime> ParseTimestamp(const std::string& text) {
  std::tm utc{};
  std::istringstream in(text);
  in >> std::get_time(&utc, "%Y-%m-%dT%H:%M:%SZ");
  if (in.fail()) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&utc));
}

Status WriteFileAtomically(const fs::path& path, std::string_view content) {
  const fs::path temp = path.string() + fmt::format(".tmp.{}", getpid());
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return MakeError(errno == ENOSPC ? ErrorCode::kResourceExhausted : ErrorCode::kUnavailable,
                     fmt::format("cannot write {}: {}", path.string(), std::strerror(errno)));
  }
  std::size_t written = 0;
  int error = 0;
  while (written < content.size()) {
    const ssize_t n = write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno;
      break;
    }
    written += static_cast<std::size_t>(n);
  }
  if (error == 0 && fsync(fd) != 0) error = errno;
  if (close(fd) != 0 && error == 0) error = errno;
  if (error == 0 && rename(temp.c_str(), path.c_str()) != 0) error = errno;
  if (error != 0) {
    unlink(temp.c_str());
    return MakeError(error == ENOSPC ? ErrorCode::kResourceExhausted : ErrorCode::kUnavailable,
                     fmt::format("cannot write {}: {}", path.string(), std::strerror(error)));
  }
  // The rename is durable only once the folder is.
  const int dir = open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);
    close(dir);
  }
  return {};
}

StatusStore::StatusStore(fs::path state_dir) : dir_(std::move(state_dir) / "labs") {}

fs::path StatusStore::PathOf(const std::string& name) const { return dir_ / (name + ".json"); }

Status StatusStore::Load() {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("cannot create {}: {}", dir_.string(), ec.message()));
  }
  fs::permissions(dir_, fs::perms::owner_all, ec);
  std::map<std::string, LabRecord> loaded;
  std::vector<std::string> damaged;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path path = it->path();
    if (path.extension() != ".json") continue;
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    try {
      LabRecord record = FromJson(value::parse(text.str()));
      if (record.name != path.stem().string()) throw web::json::json_exception("name mismatch");
      loaded.emplace(record.name, std::move(record));
    } catch (const std::exception& e) {
      const fs::path aside = path.string() + ".corrupt";
      fs::rename(path, aside, ec);
      damaged.push_back(
          fmt::format("{} ({}; moved to {})", path.string(), e.what(), aside.string()));
    }
  }
  {
    std::lock_guard guard(mutex_);
    records_ = std::move(loaded);
  }
  if (!damaged.empty()) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("damaged status files set aside: {}", fmt::join(damaged, "; ")));
  }
  return {};
}

std::optional<LabRecord> StatusStore::Get(const std::string& name) const {
  std::lock_guard guard(mutex_);
  const auto it = records_.find(name);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

std::vector<LabRecord> StatusStore::List() const {
  std::lock_guard guard(mutex_);
  std::vector<LabRecord> out;
  for (const auto& [name, record] : records_) out.push_back(record);
  return out;
}

Status StatusStore::UpdateIfPresent(const std::string& name,
                                    const std::function<void(LabRecord&)>& mutate) {
  std::unique_lock guard(mutex_);
  if (!records_.contains(name)) return {};
  return UpdateLocked(name, mutate);
}

Status StatusStore::Update(const std::string& name, const std::function<void(LabRecord&)>& mutate) {
  std::unique_lock guard(mutex_);
  return UpdateLocked(name, mutate);
}

Status StatusStore::UpdateLocked(const std::string& name,
                                 const std::function<void(LabRecord&)>& mutate) {
  const auto it = records_.find(name);
  LabRecord record;
  if (it != records_.end()) {
    record = it->second;
  } else {
    record.name = name;
  }
  const std::string before = it == records_.end() ? "" : Serialize(record);
  mutate(record);
  const std::string after = Serialize(record);
  if (after == before) return {};
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (auto written = WriteFileAtomically(PathOf(name), after); !written) return written;
  records_[name] = std::move(record);
  return {};
}

Status StatusStore::Remove(const std::string& name) {
  std::lock_guard guard(mutex_);
  std::error_code ec;
  fs::remove(PathOf(name), ec);
  if (ec) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot remove {}: {}", PathOf(name).string(), ec.message()));
  }
  records_.erase(name);
  return {};
}

value ToJson(const Condition& c) {
  value item = value::object(true);
  item["type"] = value::string(c.type);
  item["status"] = value::string(c.status);
  item["reason"] = value::string(c.reason);
  item["message"] = value::string(c.message);
  item["lastTransitionTime"] = value::string(FormatTimestamp(c.last_transition));
  item["observedGeneration"] = value::number(c.observed_generation);
  return item;
}

value ToJson(const NodeStatus& n) {
  value item = value::object(true);
  item["name"] = value::string(n.name);
  item["role"] = value::string(n.role);
  item["ip"] = value::string(n.ip);
  item["domainState"] = value::string(n.domain_state);
  item["bootstrapPhase"] = value::string(n.bootstrap_phase);
  item["ready"] = value::boolean(n.ready);
  return item;
}

value ToJson(const DriftStatus& d) {
  value item = value::object(true);
  item["kind"] = value::string(d.kind);
  item["object"] = value::string(d.object);
  item["message"] = value::string(d.message);
  item["remediated"] = value::boolean(d.remediated);
  return item;
}

value ToJson(const Event& e) {
  value item = value::object(true);
  item["type"] = value::string(e.type);
  item["reason"] = value::string(e.reason);
  item["message"] = value::string(e.message);
  item["count"] = value::number(e.count);
  item["firstTimestamp"] = value::string(FormatTimestamp(e.first));
  item["lastTimestamp"] = value::string(FormatTimestamp(e.last));
  return item;
}

Status RecordReconcileTimeout(StatusStore& store, const std::string& key, Duration running,
                              Duration deadline, WallTime now) {
  const auto seconds = [](Duration d) {
    return std::chrono::duration_cast<std::chrono::seconds>(d).count();
  };
  return store.UpdateIfPresent(key, [&](LabRecord& r) {
    AddEvent(r, "Warning", "ReconcileTimedOut",
             fmt::format("a reconcile has been running for {} s (deadline {} s, "
                         "--reconcile-timeout); the other labs go on meanwhile",
                         seconds(running), seconds(deadline)),
             now);
  });
}

}  // namespace vmlab::controller
