#include "controller/api.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <set>

#include "controller/status_json.h"
#include "crds/canonical.h"
#include "crds/yaml_scalar.h"
#include "metrics/registry.h"

namespace vmlab::controller {
namespace {

using web::json::value;

constexpr std::string_view kCollection = "/api/v1/labclusters";

// A YAML node of the canonical form as JSON: scalars typed as YAML 1.2 reads
// them (quoted ones stay strings).
value YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      value out = value::object(/*keep_order=*/true);
      for (const auto& entry : node) out[entry.first.Scalar()] = YamlToJson(entry.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      value out = value::array();
      for (std::size_t i = 0; i < node.size(); ++i) out[i] = YamlToJson(node[i]);
      return out;
    }
    case YAML::NodeType::Scalar: {
      if (node.Tag() == "!") return value::string(node.Scalar());
      switch (crds::ClassifyPlainScalar(node.Scalar())) {
        case crds::ScalarKind::kInt:
          return value::number(static_cast<int64_t>(std::stoll(node.Scalar())));
        case crds::ScalarKind::kBool:
          return value::boolean(node.Scalar() == "true");
        case crds::ScalarKind::kNull:
          return value::null();
        case crds::ScalarKind::kFloat:
          return value::number(std::stod(node.Scalar()));
        case crds::ScalarKind::kString:
          return value::string(node.Scalar());
      }
      return value::string(node.Scalar());
    }
    default:
      return value::null();
  }
}

value StringMap(const std::map<std::string, std::string>& map) {
  value out = value::object();
  for (const auto& [k, v] : map) out[k] = value::string(v);
  return out;
}

value LabClusterJson(const std::string& name, const std::optional<DesiredLab>& desired,
                     const std::optional<LabRecord>& record) {
  value lab = value::object(true);
  lab["apiVersion"] = value::string(std::string(crds::kApiVersion));
  lab["kind"] = value::string(std::string(crds::kKind));
  value metadata = value::object(true);
  metadata["name"] = value::string(name);
  metadata["generation"] = value::number(record ? record->generation : 0);
  if (record && record->created != WallTime{}) {
    metadata["creationTimestamp"] = value::string(FormatTimestamp(record->created));
  }
  if (desired && desired->deletion_at) {
    metadata["deletionTimestamp"] = value::string(FormatTimestamp(*desired->deletion_at));
  }
  if (desired && desired->spec) {
    if (!desired->spec->metadata.labels.empty()) {
      metadata["labels"] = StringMap(desired->spec->metadata.labels);
    }
    if (!desired->spec->metadata.annotations.empty()) {
      metadata["annotations"] = StringMap(desired->spec->metadata.annotations);
    }
  }
  if (desired) metadata["source"] = value::string(desired->source);
  lab["metadata"] = metadata;
  if (desired && desired->spec) {
    lab["spec"] = YamlToJson(YAML::Load(crds::CanonicalYaml(*desired->spec))["spec"]);
  }
  value status = value::object(true);
  if (record) {
    status["observedGeneration"] = value::number(record->observed_generation);
    status["conditions"] = ArrayJson(record->conditions);
    status["nodes"] = ArrayJson(record->nodes);
    status["endpoint"] = value::string(record->endpoint);
    status["kubeconfig"] = value::string(record->kubeconfig);
    status["drift"] = ArrayJson(record->drift);
  }
  lab["status"] = status;
  return lab;
}

value EventsJson(const std::string& name, const LabRecord& record) {
  value items = value::array();
  for (std::size_t i = 0; i < record.events.size(); ++i) {
    value item = ToJson(record.events[i]);
    value involved = value::object(true);
    involved["kind"] = value::string(std::string(crds::kKind));
    involved["name"] = value::string(name);
    item["involvedObject"] = involved;
    items[i] = item;
  }
  value out = value::object(true);
  out["kind"] = value::string("EventList");
  out["items"] = items;
  return out;
}

ApiResponse Json(int status, const value& body) {
  return {status, "application/json", body.serialize()};
}

ApiResponse Failure(int code, const char* reason, std::string message) {
  value body = value::object(true);
  body["kind"] = value::string("Status");
  body["apiVersion"] = value::string("v1");
  body["status"] = value::string("Failure");
  body["message"] = value::string(std::move(message));
  body["reason"] = value::string(reason);
  body["code"] = value::number(code);
  return Json(code, body);
}

ApiResponse Text(int status, std::string body) {
  return {status, "text/plain; charset=utf-8", std::move(body)};
}

}  // namespace

ApiResponse HandleApiRequest(const ApiContext& context, std::string_view method,
                             std::string_view path) {
  if (method != "GET" && method != "HEAD") {
    return Failure(405, "MethodNotAllowed",
                   fmt::format("{} is not supported; this API is read-only (GET)", method));
  }
  if (path == "/healthz") return Text(200, "ok\n");
  if (path == "/readyz") {
    if (auto reason = context.not_ready ? context.not_ready() : std::nullopt) {
      return Text(503, fmt::format("not ready: {}\n", *reason));
    }
    return Text(200, "ok\n");
  }
  if (path == "/metrics")
    return {200, "text/plain; version=0.0.4; charset=utf-8", context.registry->Serialize()};

  if (path == kCollection || path == std::string(kCollection) + "/") {
    std::set<std::string> names;
    for (const auto& name : context.desired->Names()) names.insert(name);
    for (const auto& record : context.store->List()) names.insert(record.name);
    value items = value::array();
    std::size_t i = 0;
    for (const auto& name : names) {
      items[i++] = LabClusterJson(name, context.desired->Get(name), context.store->Get(name));
    }
    value list = value::object(true);
    list["apiVersion"] = value::string(std::string(crds::kApiVersion));
    list["kind"] = value::string("LabClusterList");
    list["items"] = items;
    return Json(200, list);
  }
  if (path.starts_with(std::string(kCollection) + "/")) {
    std::string_view rest = path.substr(kCollection.size() + 1);
    const bool events = rest.ends_with("/events");
    if (events) rest.remove_suffix(std::string_view("/events").size());
    const std::string name(rest);
    if (name.empty() || name.find('/') != std::string::npos || name.size() > 253) {
      return Failure(404, "NotFound", fmt::format("no such path: {}", path.substr(0, 300)));
    }
    const auto desired = context.desired->Get(name);
    const auto record = context.store->Get(name);
    if (!desired && !record) {
      return Failure(404, "NotFound", fmt::format("labcluster \"{}\" not found", name));
    }
    if (events) return Json(200, EventsJson(name, record.value_or(LabRecord{})));
    return Json(200, LabClusterJson(name, desired, record));
  }
  return Failure(404, "NotFound", fmt::format("no such path: {}", path.substr(0, 300)));
}

}  // namespace vmlab::controller
