#include "controller/client_commands.h"

#include <cpprest/http_client.h>
#include <fmt/format.h>
#include <fmt/ostream.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <optional>
#include <vector>

#include "controller/http_server.h"
#include "controller/status_store.h"

namespace vmlab::controller {
namespace {

using web::json::value;

struct Fetched {
  int code = 0;  // 0: not reached
  value body;
  std::string error;
};

Fetched Fetch(const std::string& server, const std::string& path, const std::string& token) {
  Fetched result;
  try {
    web::http::client::http_client_config config;
    config.set_timeout(std::chrono::seconds(10));
    web::http::client::http_client client(server, config);
    web::http::http_request request(web::http::methods::GET);
    request.set_request_uri(path);
    if (!token.empty()) {
      request.headers().add(web::http::header_names::authorization, "Bearer " + token);
    }
    web::http::http_response response = client.request(request).get();
    result.code = response.status_code();
    const std::string text = response.extract_string(/*ignore_content_type=*/true).get();
    try {
      result.body = value::parse(text);
    } catch (const web::json::json_exception&) {  // e.g. a plain-text refusal
      result.body = value::object();
      std::string message = text;
      while (!message.empty() && message.back() == '\n') message.pop_back();
      if (result.code == 401) message += "; give --token-file FILE with the controller's token";
      result.body["message"] = value::string(message);
    }
  } catch (const std::exception& e) {
    result.code = 0;
    result.error = e.what();
  }
  return result;
}

int Unreachable(const std::string& server, const Fetched& fetched, std::ostream& err) {
  fmt::print(err,
             "vmlab: cannot reach the vmlab controller at {}: {}\nIs `vmlab controller` running? "
             "Use --server URL for another address.\n",
             server, fetched.error);
  return 2;
}

std::string Str(const value& object, const char* key) {
  return object.is_object() && object.has_string_field(key) ? object.at(key).as_string() : "";
}

const value* Field(const value& object, std::initializer_list<const char*> path) {
  const value* node = &object;
  for (const char* key : path) {
    if (!node->is_object() || !node->has_field(key)) return nullptr;
    node = &node->at(key);
  }
  return node;
}

const value* FindCondition(const value& lab, const std::string& type) {
  const value* conditions = Field(lab, {"status", "conditions"});
  if (!conditions || !conditions->is_array()) return nullptr;
  for (const value& c : conditions->as_array()) {
    if (Str(c, "type") == type) return &c;
  }
  return nullptr;
}

std::string Age(const std::string& timestamp) {
  const auto created = ParseTimestamp(timestamp);
  if (!created) return "<unknown>";
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - *created)
          .count();
  if (seconds < 120) return fmt::format("{}s", std::max<long long>(seconds, 0));
  if (seconds < 2 * 3600) return fmt::format("{}m", seconds / 60);
  if (seconds < 2 * 86400) return fmt::format("{}h", seconds / 3600);
  return fmt::format("{}d", seconds / 86400);
}

// "ready/desired" nodes of one role.
std::string NodeCount(const value& lab, const char* role, const char* replicas_field) {
  int ready = 0;
  if (const value* nodes = Field(lab, {"status", "nodes"}); nodes && nodes->is_array()) {
    for (const value& n : nodes->as_array()) {
      if (Str(n, "role") == role && n.has_boolean_field("ready") && n.at("ready").as_bool())
        ++ready;
    }
  }
  const value* desired = Field(lab, {"spec", replicas_field, "replicas"});
  return fmt::format("{}/{}", ready, desired && desired->is_number() ? desired->as_integer() : 0);
}

// The message a person needs first: why the lab is not ready, or an invalid spec.
std::string Message(const value& lab) {
  const value* spec_valid = FindCondition(lab, "SpecValid");
  if (spec_valid && Str(*spec_valid, "status") == "False") return Str(*spec_valid, "message");
  const value* ready = FindCondition(lab, "Ready");
  return ready ? Str(*ready, "message") : "";
}

void PrintTable(const std::vector<value>& labs, std::ostream& out) {
  std::vector<std::array<std::string, 6>> rows{
      {"NAME", "READY", "CONTROL-PLANE", "WORKERS", "AGE", "MESSAGE"}};
  for (const value& lab : labs) {
    const value* ready = FindCondition(lab, "Ready");
    rows.push_back({Str(lab.at("metadata"), "name"), ready ? Str(*ready, "status") : "Unknown",
                    NodeCount(lab, "control-plane", "controlPlane"),
                    NodeCount(lab, "worker", "workers"),
                    Age(Str(lab.at("metadata"), "creationTimestamp")), Message(lab)});
  }
  std::array<std::size_t, 6> widths{};
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < 5; ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < 5; ++i) line += fmt::format("{:<{}}   ", row[i], widths[i]);
    line += row[5];
    fmt::print(out, "{}\n", line);
  }
}

YAML::Node JsonToYaml(const value& v) {
  if (v.is_object()) {
    YAML::Node node(YAML::NodeType::Map);
    for (const auto& [key, child] : v.as_object()) node[key] = JsonToYaml(child);
    return node;
  }
  if (v.is_array()) {
    YAML::Node node(YAML::NodeType::Sequence);
    for (const value& child : v.as_array()) node.push_back(JsonToYaml(child));
    return node;
  }
  if (v.is_string()) return YAML::Node(v.as_string());
  if (v.is_boolean()) return YAML::Node(v.as_bool());
  if (v.is_integer()) return YAML::Node(v.as_number().to_int64());
  if (v.is_number()) return YAML::Node(v.as_double());
  return YAML::Node();
}

void PrintYaml(const value& v, std::ostream& out) {
  YAML::Emitter emitter;
  emitter << JsonToYaml(v);
  fmt::print(out, "{}\n", emitter.c_str());
}

// The bearer token in `file`, or "" without one; nullopt (after saying why)
// when the file cannot be used.
std::optional<std::string> TokenFrom(const std::string& file, std::ostream& err) {
  if (file.empty()) return "";
  auto token = ReadBearerToken(file);
  if (!token) {
    fmt::print(err, "vmlab: --token-file: {}\n", token.error().message);
    return std::nullopt;
  }
  return *token;
}

}  // namespace

int RunGet(const GetOptions& options, std::ostream& out, std::ostream& err) {
  const auto token = TokenFrom(options.token_file, err);
  if (!token) return 2;
  const std::string path =
      options.name.empty() ? "/api/v1/labclusters" : "/api/v1/labclusters/" + options.name;
  const Fetched fetched = Fetch(options.server, path, *token);
  if (fetched.code == 0) return Unreachable(options.server, fetched, err);
  if (fetched.code != 200) {
    fmt::print(err, "vmlab: {}\n", Str(fetched.body, "message"));
    return 1;
  }
  if (options.output == "json") {
    fmt::print(out, "{}\n", fetched.body.serialize());
    return 0;
  }
  if (options.output == "yaml") {
    PrintYaml(fetched.body, out);
    return 0;
  }
  std::vector<value> labs;
  if (options.name.empty()) {
    if (const value* items = Field(fetched.body, {"items"}); items && items->is_array()) {
      for (const value& lab : items->as_array()) labs.push_back(lab);
    }
    if (labs.empty()) {
      fmt::print(err, "No LabClusters found.\n");
      return 0;
    }
  } else {
    labs.push_back(fetched.body);
  }
  PrintTable(labs, out);
  return 0;
}

int RunDescribe(const DescribeOptions& options, std::ostream& out, std::ostream& err) {
  const auto token = TokenFrom(options.token_file, err);
  if (!token) return 2;
  const Fetched lab = Fetch(options.server, "/api/v1/labclusters/" + options.name, *token);
  if (lab.code == 0) return Unreachable(options.server, lab, err);
  if (lab.code != 200) {
    fmt::print(err, "vmlab: {}\n", Str(lab.body, "message"));
    return 1;
  }
  const Fetched events =
      Fetch(options.server, "/api/v1/labclusters/" + options.name + "/events", *token);
  const value& v = lab.body;
  const value& metadata = v.at("metadata");
  fmt::print(out, "Name:         {}\n", Str(metadata, "name"));
  fmt::print(out, "Source:       {}\n", Str(metadata, "source"));
  if (const value* g = Field(v, {"metadata", "generation"})) {
    fmt::print(out, "Generation:   {}\n", g->as_number().to_int64());
  }
  fmt::print(out, "Created:      {}\n", Str(metadata, "creationTimestamp"));
  if (!Str(metadata, "deletionTimestamp").empty()) {
    fmt::print(out, "Deleting at:  {}\n", Str(metadata, "deletionTimestamp"));
  }
  if (const value* spec = Field(v, {"spec"})) {
    const value& k8s = spec->at("kubernetes");
    const value& net = spec->at("network");
    const value& cp = spec->at("controlPlane");
    const value& workers = spec->at("workers");
    fmt::print(out, "Spec:\n");
    fmt::print(out, "  Kubernetes:     {} ({}), pods {}, services {}\n", Str(k8s, "version"),
               Str(k8s, "cni"), Str(k8s, "podCIDR"), Str(k8s, "serviceCIDR"));
    fmt::print(out, "  Network:        {} (domain {})\n", Str(net, "cidr"), Str(net, "domain"));
    fmt::print(out, "  Control planes: {} x {} vCPU, {} MiB, {} GiB; endpoint {}:{} on VIP {}\n",
               cp.at("replicas").as_integer(), cp.at("cpus").as_integer(),
               cp.at("memoryMiB").as_integer(), cp.at("diskGiB").as_integer(),
               Str(cp.at("endpoint"), "host"), cp.at("endpoint").at("port").as_integer(),
               Str(cp.at("endpoint"), "vip"));
    fmt::print(out, "  Workers:        {} x {} vCPU, {} MiB, {} GiB (+{} GiB data disk)\n",
               workers.at("replicas").as_integer(), workers.at("cpus").as_integer(),
               workers.at("memoryMiB").as_integer(), workers.at("diskGiB").as_integer(),
               workers.at("extraDiskGiB").as_integer());
  } else {
    fmt::print(out, "Spec:         <none valid yet>\n");
  }
  fmt::print(out, "Conditions:\n");
  if (const value* conditions = Field(v, {"status", "conditions"});
      conditions && conditions->is_array()) {
    for (const value& c : conditions->as_array()) {
      fmt::print(out, "  {:<20} {:<8} {:<24} {}\n", Str(c, "type"), Str(c, "status"),
                 Str(c, "reason"), Str(c, "message"));
    }
  }
  fmt::print(out, "Nodes:\n");
  if (const value* nodes = Field(v, {"status", "nodes"}); nodes && nodes->is_array()) {
    for (const value& n : nodes->as_array()) {
      const std::string phase = Str(n, "bootstrapPhase");
      fmt::print(out, "  {:<24} {:<14} {:<16} {:<10} {:<9} {}\n", Str(n, "name"), Str(n, "role"),
                 Str(n, "ip"), Str(n, "domainState"),
                 n.has_boolean_field("ready") && n.at("ready").as_bool() ? "ready" : "not ready",
                 phase.empty() ? "-" : phase);
    }
  }
  fmt::print(out, "Events:\n");
  if (const value* items = Field(events.body, {"items"}); items && items->is_array()) {
    for (const value& e : items->as_array()) {
      fmt::print(out, "  {:<8} {:<16} x{:<3} {}  {}\n", Str(e, "type"), Str(e, "reason"),
                 e.at("count").as_integer(), Str(e, "lastTimestamp"), Str(e, "message"));
    }
  }
  return 0;
}

}  // namespace vmlab::controller
