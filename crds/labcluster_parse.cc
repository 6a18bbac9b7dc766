#include "crds/labcluster_parse.h"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <utility>

#include "crds/labcluster_rules.h"
#include "crds/suggest.h"
#include "crds/yaml_scalar.h"

namespace vmlab::crds {
namespace {

constexpr std::string_view kPlainTag = "?";
constexpr std::string_view kQuotedTag = "!";
constexpr std::string_view kTagPrefix = "tag:yaml.org,2002:";

SourcePos PosOf(const YAML::Mark& mark, SourcePos fallback) {
  if (mark.is_null()) return fallback;
  return {mark.line + 1, mark.column + 1};
}

std::string Quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text.substr(0, 80)) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;
    }
  }
  if (text.size() > 80) out += "...";
  out += '"';
  return out;
}

// The scalar's kind, honouring quotes and explicit core-schema tags, or an
// error message for a tag this schema does not know.
std::expected<ScalarKind, std::string> KindOf(const YAML::Node& node) {
  const std::string& tag = node.Tag();
  if (tag.empty() || tag == kPlainTag) return ClassifyPlainScalar(node.Scalar());
  if (tag == kQuotedTag) return ScalarKind::kString;
  if (tag.starts_with(kTagPrefix)) {
    const std::string_view name = std::string_view(tag).substr(kTagPrefix.size());
    if (name == "str") return ScalarKind::kString;
    const ScalarKind plain = ClassifyPlainScalar(node.Scalar());
    if ((name == "int" && plain == ScalarKind::kInt) ||
        (name == "float" && (plain == ScalarKind::kFloat || plain == ScalarKind::kInt)) ||
        (name == "bool" && plain == ScalarKind::kBool) ||
        (name == "null" && plain == ScalarKind::kNull)) {
      return name == "float" ? ScalarKind::kFloat : plain;
    }
    return std::unexpected(fmt::format("{} is not a valid !!{}", Quote(node.Scalar()), name));
  }
  return std::unexpected(fmt::format("the YAML tag \"{}\" is not supported here; remove it", tag));
}

// "the integer 3", "a mapping", ...: how a value reads to a user.
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "no value";
    case YAML::NodeType::Scalar:
      break;
  }
  const auto kind = KindOf(node);
  if (!kind) return fmt::format("the tagged value {}", Quote(node.Scalar()));
  switch (*kind) {
    case ScalarKind::kNull:
      return "no value";
    case ScalarKind::kBool:
      return fmt::format("the boolean {}", node.Scalar());
    case ScalarKind::kInt:
      return fmt::format("the integer {}", node.Scalar());
    case ScalarKind::kFloat:
      return fmt::format("the number {}", node.Scalar());
    case ScalarKind::kString:
      return fmt::format("the string {}", Quote(node.Scalar()));
  }
  return "a value";
}

// For an empty value: how to fix it. Empty values are never taken as "use the
// default", so that a forgotten value is caught rather than silently replaced.
std::string_view NoValueHint(const YAML::Node& node) {
  return node.IsNull() ? "; write a value, or remove the field to use the default" : "";
}

std::string JoinPath(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  const bool plain = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
  return plain ? fmt::format("{}.{}", parent, key) : fmt::format("{}[{}]", parent, Quote(key));
}

// A first pass over the event stream, before YAML::LoadAll builds nodes.
//
// yaml-cpp 0.7's LoadAll never ends on some malformed streams (",", ",,"):
// the parser reports a null document without consuming the offending token,
// over and over (fixed upstream after 0.7). This pass drives the same parser
// in a loop that notices the repeat, so LoadAll only ever runs on streams it
// is known to finish. It also records where each document starts, which the
// nodes do not tell for an empty document.
class DocumentScanner : public YAML::EventHandler {
 public:
  struct Scan {
    std::optional<YAML::Mark> stuck;  // a token the parser cannot move past
    std::vector<YAML::Mark> starts;   // where each document starts
  };

  static Scan Run(const std::string& text) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentScanner scanner;
    Scan scan;
    std::optional<YAML::Mark> lone_null;  // the previous document, if it was a lone null
    while (parser.HandleNextDocument(scanner)) {
      if (scanner.events_ == 1 && scanner.null_mark_) {
        if (lone_null && lone_null->pos == scanner.null_mark_->pos) {
          scan.stuck = lone_null;
          break;
        }
        lone_null = scanner.null_mark_;
      } else {
        lone_null.reset();
      }
      scan.starts.push_back(scanner.start_);
    }
    return scan;
  }

  void OnDocumentStart(const YAML::Mark& mark) override {
    start_ = mark;
    events_ = 0;
    null_mark_.reset();
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override {
    ++events_;
    null_mark_ = mark;
  }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { ++events_; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    ++events_;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    ++events_;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    ++events_;
  }
  void OnMapEnd() override {}

 private:
  YAML::Mark start_;
  int events_ = 0;
  std::optional<YAML::Mark> null_mark_;
};

class DocumentParser;

// One YAML mapping being read: its entries in order, duplicates and unknown
// keys reported against the keys the schema knows at this level.
class MapReader {
 public:
  MapReader(DocumentParser& parser, const YAML::Node& node, std::string path, SourcePos where,
            std::initializer_list<std::string_view> known);

  // The value written for `key`, or nullopt when the key is absent.
  [[nodiscard]] std::optional<YAML::Node> Get(std::string_view key) const;
  [[nodiscard]] std::string Child(std::string_view key) const { return JoinPath(path_, key); }
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] SourcePos where() const { return where_; }
  // Reports keys outside `known`, with a "did you mean" hint for near misses.
  void ReportUnknownKeys();
  [[nodiscard]] const std::vector<std::pair<std::string, YAML::Node>>& entries() const {
    return entries_;
  }

 private:
  DocumentParser& parser_;
  std::string path_;
  SourcePos where_;
  std::vector<std::string_view> known_;
  std::vector<std::pair<std::string, YAML::Node>> entries_;  // first occurrence of each key
  std::vector<std::pair<std::string, SourcePos>> key_positions_;
};

class DocumentParser {
 public:
  explicit DocumentParser(ParsedDocument& doc) : doc_(doc) {}

  void Run(const YAML::Node& root);

  // A structural or value error: the field cannot be typed.
  void TypeError(SourcePos pos, std::string_view field, std::string message) {
    typed_ = false;
    Add(Severity::kError, pos, field, std::move(message));
  }
  // A rule broken by a well-typed value.
  void RuleError(SourcePos pos, std::string_view field, std::string message) {
    Add(Severity::kError, pos, field, std::move(message));
  }
  void Add(Severity severity, SourcePos pos, std::string_view field, std::string message) {
    doc_.diagnostics.push_back({severity, doc_.file, pos, std::string(field), std::move(message)});
  }
  void RecordField(const std::string& path, SourcePos key, SourcePos value) {
    doc_.fields.try_emplace(path, FieldLocation{key, value});
  }
  // Where the value of `field` starts; for an empty value, where its key is.
  [[nodiscard]] SourcePos ValuePos(const YAML::Node& node, std::string_view field) const {
    if (node.IsNull()) {
      if (auto it = doc_.fields.find(field); it != doc_.fields.end()) return it->second.key;
    }
    return PosOf(node.Mark(), doc_.PositionOf(field));
  }

 private:
  // Reads the mapping at `key`; nullopt when absent or not a mapping (reported).
  std::optional<MapReader> Mapping(MapReader& parent, std::string_view key,
                                   std::initializer_list<std::string_view> known, bool required);
  std::optional<std::string> String(MapReader& map, std::string_view key,
                                    std::optional<std::string_view> fallback,
                                    std::string_view required_hint = {});
  std::optional<int> Int(MapReader& map, std::string_view key, int fallback, int min, int max,
                         std::string_view unit = {});
  std::optional<bool> Bool(MapReader& map, std::string_view key, bool fallback);
  template <typename E, std::size_t N>
  std::optional<E> Enum(MapReader& map, std::string_view key,
                        const std::array<std::pair<std::string_view, E>, N>& values, E fallback);
  std::optional<Ipv4Cidr> Cidr(MapReader& map, std::string_view key, std::string_view fallback);
  std::map<std::string, std::string> StringMap(MapReader& map, std::string_view key);
  std::vector<std::string> StringList(MapReader& map, std::string_view key);
  // A required string-valued scalar that must not be absent; reports otherwise.
  bool ScalarIsString(const YAML::Node& node, std::string_view field);
  void Missing(const MapReader& map, std::string_view key, std::string_view hint);

  void ParseSpec(MapReader& spec, LabCluster& lab);

  ParsedDocument& doc_;
  bool typed_ = true;
};

MapReader::MapReader(DocumentParser& parser, const YAML::Node& node, std::string path,
                     SourcePos where, std::initializer_list<std::string_view> known)
    : parser_(parser), path_(std::move(path)), where_(where), known_(known) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node key = it->first;
    const SourcePos key_pos = PosOf(key.Mark(), where_);
    if (!key.IsScalar() || KindOf(key) != ScalarKind::kString) {
      parser_.TypeError(key_pos, path_,
                        fmt::format("field names must be strings; got {}", Describe(key)));
      continue;
    }
    const std::string& name = key.Scalar();
    const auto seen = std::find_if(key_positions_.begin(), key_positions_.end(),
                                   [&](const auto& entry) { return entry.first == name; });
    if (seen != key_positions_.end()) {
      parser_.TypeError(key_pos, JoinPath(path_, name),
                        fmt::format("duplicate key; it is already set at line {}, column {}; "
                                    "keep one of them",
                                    seen->second.line, seen->second.column));
      continue;
    }
    key_positions_.emplace_back(name, key_pos);
    entries_.emplace_back(name, it->second);
    parser_.RecordField(JoinPath(path_, name), key_pos, PosOf(it->second.Mark(), key_pos));
  }
}

std::optional<YAML::Node> MapReader::Get(std::string_view key) const {
  for (const auto& [name, value] : entries_) {
    if (name == key) return value;
  }
  return std::nullopt;
}

void MapReader::ReportUnknownKeys() {
  for (const auto& [name, pos] : key_positions_) {
    if (std::find(known_.begin(), known_.end(), name) != known_.end()) continue;
    std::string message = "unknown field";
    if (name == "<<") {
      message += "; YAML merge keys are not supported: write the fields out";
    } else if (auto hint = SuggestClosest(name, known_)) {
      message += fmt::format("; did you mean \"{}\"?", *hint);
    } else {
      std::string list;
      for (const auto known : known_) list += fmt::format("{}{}", list.empty() ? "" : ", ", known);
      message += fmt::format("; known fields here: {}", list);
    }
    parser_.TypeError(pos, JoinPath(path_, name), std::move(message));
  }
}

void DocumentParser::Missing(const MapReader& map, std::string_view key, std::string_view hint) {
  TypeError(map.where(), map.Child(key),
            hint.empty() ? std::string("required field is missing")
                         : fmt::format("required field is missing; {}", hint));
}

bool DocumentParser::ScalarIsString(const YAML::Node& node, std::string_view field) {
  const SourcePos pos = ValuePos(node, field);
  if (!node.IsScalar()) {
    TypeError(pos, field,
              fmt::format("expected a string, got {}{}", Describe(node), NoValueHint(node)));
    return false;
  }
  const auto kind = KindOf(node);
  if (!kind) {
    TypeError(pos, field, kind.error());
    return false;
  }
  if (*kind != ScalarKind::kString) {
    TypeError(pos, field,
              fmt::format("expected a string, got {}; put it in quotes if it is meant as text",
                          Describe(node)));
    return false;
  }
  return true;
}

std::optional<MapReader> DocumentParser::Mapping(MapReader& parent, std::string_view key,
                                                 std::initializer_list<std::string_view> known,
                                                 bool required) {
  const std::string path = parent.Child(key);
  const auto node = parent.Get(key);
  if (!node) {
    if (required) Missing(parent, key, {});
    return std::nullopt;
  }
  if (!node->IsMap()) {
    TypeError(ValuePos(*node, path), path,
              fmt::format("expected a mapping, got {}", Describe(*node)));
    return std::nullopt;
  }
  MapReader reader(*this, *node, path, doc_.PositionOf(path), known);
  reader.ReportUnknownKeys();
  return reader;
}

std::optional<std::string> DocumentParser::String(MapReader& map, std::string_view key,
                                                  std::optional<std::string_view> fallback,
                                                  std::string_view required_hint) {
  const auto node = map.Get(key);
  if (!node) {
    if (fallback) return std::string(*fallback);
    Missing(map, key, required_hint);
    return std::nullopt;
  }
  if (!ScalarIsString(*node, map.Child(key))) return std::nullopt;
  return node->Scalar();
}

std::optional<int> DocumentParser::Int(MapReader& map, std::string_view key, int fallback, int min,
                                       int max, std::string_view unit) {
  const auto node = map.Get(key);
  if (!node) return fallback;
  const std::string field = map.Child(key);
  const SourcePos pos = ValuePos(*node, field);
  const auto kind = node->IsScalar() ? KindOf(*node) : std::expected<ScalarKind, std::string>();
  if (!kind) {
    TypeError(pos, field, kind.error());
    return std::nullopt;
  }
  if (!node->IsScalar() || *kind != ScalarKind::kInt) {
    std::string message =
        fmt::format("expected an integer, got {}{}", Describe(*node), NoValueHint(*node));
    if (node->IsScalar() && kind && *kind == ScalarKind::kString &&
        IsDecimalInteger(node->Scalar())) {
      message += "; remove the quotes";
    } else if (kind && *kind == ScalarKind::kFloat) {
      message += "; write a whole number";
    }
    TypeError(pos, field, std::move(message));
    return std::nullopt;
  }
  std::int64_t value = 0;
  std::string_view text = node->Scalar();
  if (text.starts_with('+')) text.remove_prefix(1);
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  const std::string suffix = unit.empty() ? "" : fmt::format(" {}", unit);
  if (ec != std::errc() || value < min || value > max) {
    TypeError(pos, field,
              fmt::format("must be between {} and {}{}; got {}", min, max, suffix, node->Scalar()));
    return std::nullopt;
  }
  return static_cast<int>(value);
}

std::optional<bool> DocumentParser::Bool(MapReader& map, std::string_view key, bool fallback) {
  const auto node = map.Get(key);
  if (!node) return fallback;
  const std::string field = map.Child(key);
  const auto kind = node->IsScalar() ? KindOf(*node) : std::expected<ScalarKind, std::string>();
  if (!kind) {
    TypeError(ValuePos(*node, field), field, kind.error());
    return std::nullopt;
  }
  if (node->IsScalar() && *kind == ScalarKind::kBool) {
    return node->Scalar().front() == 't' || node->Scalar().front() == 'T';
  }
  std::string message =
      fmt::format("expected true or false, got {}{}", Describe(*node), NoValueHint(*node));
  if (node->IsScalar() && kind && *kind == ScalarKind::kString) {
    const std::string& text = node->Scalar();
    if (ClassifyPlainScalar(text) == ScalarKind::kBool) {
      message += "; remove the quotes";
    } else if (text == "yes" || text == "no" || text == "on" || text == "off" || text == "y" ||
               text == "n" || text == "Yes" || text == "No" || text == "On" || text == "Off") {
      message += "; YAML 1.2 reads it as a string: write true or false";
    }
  }
  TypeError(ValuePos(*node, field), field, std::move(message));
  return std::nullopt;
}

template <typename E, std::size_t N>
std::optional<E> DocumentParser::Enum(MapReader& map, std::string_view key,
                                      const std::array<std::pair<std::string_view, E>, N>& values,
                                      E fallback) {
  const auto node = map.Get(key);
  if (!node) return fallback;
  const std::string field = map.Child(key);
  if (!ScalarIsString(*node, field)) return std::nullopt;
  std::array<std::string_view, N> names;
  for (std::size_t i = 0; i < N; ++i) {
    if (values[i].first == node->Scalar()) return values[i].second;
    names[i] = values[i].first;
  }
  std::string list;
  for (const auto name : names) list += fmt::format("{}{}", list.empty() ? "" : ", ", name);
  std::string message =
      fmt::format("unsupported value {}; use one of: {}", Quote(node->Scalar()), list);
  if (auto hint = SuggestClosest(node->Scalar(), names)) {
    message += fmt::format(" (did you mean \"{}\"?)", *hint);
  }
  TypeError(ValuePos(*node, field), field, std::move(message));
  return std::nullopt;
}

std::optional<Ipv4Cidr> DocumentParser::Cidr(MapReader& map, std::string_view key,
                                             std::string_view fallback) {
  const auto text = String(map, key, fallback);
  if (!text) return std::nullopt;
  auto cidr = ParseIpv4Cidr(*text);
  if (!cidr) {
    const std::string field = map.Child(key);
    TypeError(doc_.PositionOf(field), field, cidr.error().message);
    return std::nullopt;
  }
  return *cidr;
}

std::map<std::string, std::string> DocumentParser::StringMap(MapReader& map, std::string_view key) {
  std::map<std::string, std::string> out;
  const auto node = map.Get(key);
  if (!node) return out;
  const std::string field = map.Child(key);
  if (!node->IsMap()) {
    TypeError(ValuePos(*node, field), field,
              fmt::format("expected a mapping of strings, got {}", Describe(*node)));
    return out;
  }
  MapReader entries(*this, *node, field, doc_.PositionOf(field), {});
  for (const auto& [name, value] : entries.entries()) {
    if (ScalarIsString(value, entries.Child(name))) out.emplace(name, value.Scalar());
  }
  return out;
}

std::vector<std::string> DocumentParser::StringList(MapReader& map, std::string_view key) {
  std::vector<std::string> out;
  const auto node = map.Get(key);
  if (!node) return out;
  const std::string field = map.Child(key);
  if (!node->IsSequence()) {
    TypeError(ValuePos(*node, field), field,
              fmt::format("expected a list of strings, got {}", Describe(*node)));
    return out;
  }
  for (std::size_t i = 0; i < node->size(); ++i) {
    const std::string item_field = fmt::format("{}[{}]", field, i);
    const YAML::Node item = (*node)[i];
    RecordField(item_field, ValuePos(item, field), ValuePos(item, field));
    if (ScalarIsString(item, item_field)) out.push_back(item.Scalar());
  }
  return out;
}

constexpr std::array kCniValues{std::pair{std::string_view("calico"), Cni::kCalico},
                                std::pair{std::string_view("cilium"), Cni::kCilium},
                                std::pair{std::string_view("bridge"), Cni::kBridge},
                                std::pair{std::string_view("none"), Cni::kNone}};
constexpr std::array kDriftValues{std::pair{std::string_view("Remediate"), DriftPolicy::kRemediate},
                                  std::pair{std::string_view("Report"), DriftPolicy::kReport}};
constexpr std::array kDeletionValues{
    std::pair{std::string_view("Delete"), DeletionPolicy::kDelete},
    std::pair{std::string_view("Retain"), DeletionPolicy::kRetain}};

void DocumentParser::Run(const YAML::Node& root) {
  if (root.IsNull()) {
    TypeError(doc_.start, "", "the document is empty; write a LabCluster or remove the separator");
    return;
  }
  if (!root.IsMap()) {
    TypeError(PosOf(root.Mark(), doc_.start), "",
              fmt::format("expected a LabCluster mapping (apiVersion, kind, metadata, spec), "
                          "got {}",
                          Describe(root)));
    return;
  }
  MapReader top(*this, root, "", doc_.start, {"apiVersion", "kind", "metadata", "spec", "status"});
  const auto api_version =
      String(top, "apiVersion", std::nullopt, fmt::format("add apiVersion: {}", kApiVersion));
  const auto kind = String(top, "kind", std::nullopt, fmt::format("add kind: {}", kKind));
  bool foreign = false;
  if (api_version && *api_version != kApiVersion) {
    TypeError(doc_.PositionOf("apiVersion"), "apiVersion",
              fmt::format("unsupported apiVersion {}; this vmlab reads {}", Quote(*api_version),
                          kApiVersion));
    foreign = true;
  }
  if (kind && *kind != kKind) {
    TypeError(
        doc_.PositionOf("kind"), "kind",
        fmt::format("unsupported kind {}; vmlab manifests are of kind {}", Quote(*kind), kKind));
    foreign = true;
  }
  if (foreign) return;  // other fields of a foreign object would only add noise
  top.ReportUnknownKeys();
  if (top.Get("status")) {
    Add(Severity::kWarning, doc_.PositionOf("status"), "status",
        "is written by vmlab and ignored in manifests; remove it");
  }

  LabCluster lab;
  if (auto metadata = Mapping(top, "metadata", {"name", "labels", "annotations"}, true)) {
    if (auto name =
            String(*metadata, "name", std::nullopt, "set a DNS-1123 label such as \"spk\"")) {
      doc_.name = *name;
      lab.metadata.name = *name;
      if (auto problem = CheckName(*name))
        RuleError(doc_.PositionOf("metadata.name"), "metadata.name", *problem);
    }
    lab.metadata.labels = StringMap(*metadata, "labels");
    lab.metadata.annotations = StringMap(*metadata, "annotations");
  }
  if (auto spec = Mapping(top, "spec",
                          {"kubernetes", "network", "controlPlane", "workers", "image", "cache",
                           "drift", "deletionPolicy", "ssh", "addons"},
                          true)) {
    ParseSpec(*spec, lab);
  }
  if (!typed_) return;
  doc_.object = std::move(lab);
  CheckCrossFieldRules(doc_);
}

void DocumentParser::ParseSpec(MapReader& spec, LabCluster& lab) {
  LabClusterSpec& out = lab.spec;
  if (auto k8s = Mapping(spec, "kubernetes",
                         {"version", "podCIDR", "serviceCIDR", "cni", "cniManifest"}, true)) {
    if (auto version =
            String(*k8s, "version", std::nullopt, "set a Kubernetes release such as \"1.30.4\"")) {
      out.kubernetes.version = *version;
      if (auto problem = CheckKubernetesVersion(*version)) {
        RuleError(doc_.PositionOf("spec.kubernetes.version"), "spec.kubernetes.version", *problem);
      }
    }
    if (auto cidr = Cidr(*k8s, "podCIDR", defaults::kPodCidr)) out.kubernetes.pod_cidr = *cidr;
    if (auto cidr = Cidr(*k8s, "serviceCIDR", defaults::kServiceCidr)) {
      out.kubernetes.service_cidr = *cidr;
    }
    if (auto cni = Enum(*k8s, "cni", kCniValues, Cni::kCalico)) out.kubernetes.cni = *cni;
    if (auto source = String(*k8s, "cniManifest", "")) {
      out.kubernetes.cni_manifest = *source;
      if (k8s->Get("cniManifest")) {
        if (auto problem = CheckManifestSource(*source)) {
          RuleError(doc_.PositionOf("spec.kubernetes.cniManifest"), "spec.kubernetes.cniManifest",
                    *problem);
        }
      }
    }
  }

  // Absent optional sections behave as empty mappings: every field defaults.
  const YAML::Node empty(YAML::NodeType::Map);
  auto section = [&](std::string_view key, std::initializer_list<std::string_view> known) {
    auto reader = Mapping(spec, key, known, false);
    if (!reader && !spec.Get(key))
      reader.emplace(*this, empty, spec.Child(key), spec.where(), known);
    return reader;
  };

  if (auto network = section("network", {"cidr", "domain"})) {
    if (auto cidr = Cidr(*network, "cidr", defaults::kNetworkCidr)) out.network.cidr = *cidr;
    if (auto domain = String(*network, "domain", defaults::kDomain)) {
      out.network.domain = *domain;
      if (auto problem = CheckDomain(*domain)) {
        RuleError(doc_.PositionOf("spec.network.domain"), "spec.network.domain", *problem);
      }
    }
  }

  if (auto cp = section("controlPlane", {"replicas", "cpus", "memoryMiB", "diskGiB", "endpoint"})) {
    auto& pool = out.control_plane;
    pool.replicas =
        Int(*cp, "replicas", defaults::kControlPlaneReplicas, 1, limits::kMaxControlPlanes)
            .value_or(0);
    pool.cpus = Int(*cp, "cpus", defaults::kCpus, limits::kMinCpus, limits::kMaxCpus).value_or(0);
    pool.memory_mib = Int(*cp, "memoryMiB", defaults::kMemoryMiB, limits::kMinMemoryMiB,
                          limits::kMaxMemoryMiB, "MiB")
                          .value_or(0);
    pool.disk_gib =
        Int(*cp, "diskGiB", defaults::kDiskGiB, limits::kMinDiskGiB, limits::kMaxDiskGiB, "GiB")
            .value_or(0);
    const YAML::Node no_endpoint(YAML::NodeType::Map);
    auto endpoint = Mapping(*cp, "endpoint", {"host", "vip", "port"}, false);
    if (!endpoint && !cp->Get("endpoint")) {
      endpoint.emplace(*this, no_endpoint, cp->Child("endpoint"), cp->where(),
                       std::initializer_list<std::string_view>{"host", "vip", "port"});
    }
    if (endpoint) {
      if (auto host = String(*endpoint, "host", lab.metadata.name)) {
        pool.endpoint.host = *host;
        if (endpoint->Get("host")) {
          if (auto problem = CheckHostLabel(*host)) {
            RuleError(doc_.PositionOf(endpoint->Child("host")), endpoint->Child("host"), *problem);
          }
        }
      }
      if (endpoint->Get("vip")) {
        if (auto vip_text = String(*endpoint, "vip", std::nullopt)) {
          if (auto vip = ParseIpv4Address(*vip_text)) {
            pool.endpoint.vip = *vip;
          } else {
            TypeError(doc_.PositionOf(endpoint->Child("vip")), endpoint->Child("vip"),
                      vip.error().message);
          }
        }
      } else {
        // Filled from the network once it is known (the address plan's .10).
        pool.endpoint.vip = Ipv4Address{
            static_cast<std::uint32_t>(out.network.cidr.OffsetAddress(kVipOffset) & 0xffffffffu)};
      }
      if (auto port = Int(*endpoint, "port", defaults::kEndpointPort, 1, 65535)) {
        pool.endpoint.port = *port;
        if (auto problem = CheckEndpointPort(*port)) {
          RuleError(doc_.PositionOf(endpoint->Child("port")), endpoint->Child("port"), *problem);
        }
      }
    }
  }

  if (auto workers =
          section("workers", {"replicas", "cpus", "memoryMiB", "diskGiB", "extraDiskGiB"})) {
    auto& pool = out.workers;
    pool.replicas =
        Int(*workers, "replicas", defaults::kWorkerReplicas, 0, limits::kMaxWorkers).value_or(0);
    pool.cpus =
        Int(*workers, "cpus", defaults::kCpus, limits::kMinCpus, limits::kMaxCpus).value_or(0);
    pool.memory_mib = Int(*workers, "memoryMiB", defaults::kMemoryMiB, limits::kMinMemoryMiB,
                          limits::kMaxMemoryMiB, "MiB")
                          .value_or(0);
    pool.disk_gib = Int(*workers, "diskGiB", defaults::kDiskGiB, limits::kMinDiskGiB,
                        limits::kMaxDiskGiB, "GiB")
                        .value_or(0);
    pool.extra_disk_gib =
        Int(*workers, "extraDiskGiB", defaults::kExtraDiskGiB, 0, limits::kMaxExtraDiskGiB, "GiB")
            .value_or(0);
  }

  if (auto image = section("image", {"path", "kernel", "initrd", "cmdline"})) {
    auto path_field = [&](std::string_view key, std::optional<std::string_view> fallback,
                          std::string& target) {
      if (auto value = String(*image, key, fallback)) {
        target = *value;
        if (image->Get(key)) {
          if (auto problem = CheckHostPath(*value)) {
            RuleError(doc_.PositionOf(image->Child(key)), image->Child(key), *problem);
          }
        }
      }
    };
    path_field("path", defaults::kImagePath, out.image.path);
    path_field("kernel", "", out.image.kernel);
    path_field("initrd", "", out.image.initrd);
    if (auto cmdline = String(*image, "cmdline", "")) {
      out.image.cmdline = *cmdline;
      if (auto problem = CheckKernelCmdline(*cmdline)) {
        RuleError(doc_.PositionOf("spec.image.cmdline"), "spec.image.cmdline", *problem);
      }
    }
  }

  if (auto cache = section("cache", {"apt", "images", "imageArchives", "goldenImage"})) {
    if (auto apt = Bool(*cache, "apt", true)) out.cache.apt = *apt;
    if (auto images = Bool(*cache, "images", true)) out.cache.images = *images;
    if (auto archives = String(*cache, "imageArchives", "")) {
      out.cache.image_archives = *archives;
      if (cache->Get("imageArchives")) {
        if (auto problem = CheckHostPath(*archives)) {
          RuleError(doc_.PositionOf(cache->Child("imageArchives")), cache->Child("imageArchives"),
                    *problem);
        }
      }
    }
    if (auto golden = Bool(*cache, "goldenImage", false)) out.cache.golden_image = *golden;
  }
  if (auto drift = section("drift", {"policy"})) {
    if (auto policy = Enum(*drift, "policy", kDriftValues, DriftPolicy::kRemediate)) {
      out.drift_policy = *policy;
    }
  }
  if (auto policy = Enum(spec, "deletionPolicy", kDeletionValues, DeletionPolicy::kDelete)) {
    out.deletion_policy = *policy;
  }
  out.addons = StringList(spec, "addons");
  for (std::size_t i = 0; i < out.addons.size(); ++i) {
    if (auto problem = CheckManifestSource(out.addons[i])) {
      const std::string field = fmt::format("spec.addons[{}]", i);
      RuleError(doc_.PositionOf(field), field, *problem);
    }
  }
  if (auto ssh = section("ssh", {"authorizedKeys"})) {
    out.ssh_authorized_keys = StringList(*ssh, "authorizedKeys");
    for (std::size_t i = 0; i < out.ssh_authorized_keys.size(); ++i) {
      if (auto problem = CheckSshPublicKey(out.ssh_authorized_keys[i])) {
        const std::string field = fmt::format("spec.ssh.authorizedKeys[{}]", i);
        RuleError(doc_.PositionOf(field), field, *problem);
      }
    }
  }
}

}  // namespace

void SortDiagnostics(ParsedDocument& doc) {
  std::stable_sort(
      doc.diagnostics.begin(), doc.diagnostics.end(), [](const Diagnostic& a, const Diagnostic& b) {
        return std::pair(a.pos.line, a.pos.column) < std::pair(b.pos.line, b.pos.column);
      });
}

bool ParsedDocument::valid() const {
  return object.has_value() &&
         std::none_of(diagnostics.begin(), diagnostics.end(),
                      [](const Diagnostic& d) { return d.severity == Severity::kError; });
}

SourcePos ParsedDocument::PositionOf(std::string_view field) const {
  std::string_view path = field;
  while (!path.empty()) {
    if (auto it = fields.find(path); it != fields.end()) {
      return path == field ? it->second.value : it->second.key;
    }
    const auto cut = path.find_last_of(".[");
    path = path.substr(0, cut == std::string_view::npos ? 0 : cut);
  }
  return start;
}

void ParsedDocument::AddError(std::string_view field, std::string message) {
  diagnostics.push_back(
      {Severity::kError, file, PositionOf(field), std::string(field), std::move(message)});
}

void ParsedDocument::AddWarning(std::string_view field, std::string message) {
  diagnostics.push_back(
      {Severity::kWarning, file, PositionOf(field), std::string(field), std::move(message)});
}

std::optional<std::string> CheckManifestSize(std::size_t bytes) {
  if (bytes <= kMaxManifestBytes) return std::nullopt;
  return fmt::format(
      "the file is {} bytes; manifests over {} bytes are refused (a LabCluster "
      "takes a few kilobytes)",
      bytes, kMaxManifestBytes);
}

std::vector<ParsedDocument> ParseManifests(std::string_view file, std::string_view text) {
  std::vector<ParsedDocument> docs;
  auto file_error = [&](SourcePos pos, std::string message) {
    ParsedDocument doc;
    doc.file = std::string(file);
    doc.start = pos;
    doc.diagnostics.push_back({Severity::kError, doc.file, pos, "", std::move(message)});
    docs.push_back(std::move(doc));
    return docs;
  };
  if (auto problem = CheckManifestSize(text.size())) return file_error({1, 1}, *problem);
  if (text.find('\0') != std::string_view::npos) {
    return file_error({1, 1}, "the file contains NUL bytes; it is not a YAML text file");
  }
  std::vector<YAML::Node> roots;
  DocumentScanner::Scan scan;
  try {
    const std::string input(text);
    scan = DocumentScanner::Run(input);
    if (scan.stuck) {
      const std::size_t at = static_cast<std::size_t>(std::max(scan.stuck->pos, 0));
      return file_error(PosOf(*scan.stuck, {1, 1}), fmt::format("invalid YAML: unexpected {} here",
                                                                Quote(input.substr(at, 1))));
    }
    roots = YAML::LoadAll(input);
  } catch (const YAML::Exception& e) {
    return file_error(PosOf(e.mark, {1, 1}), fmt::format("invalid YAML: {}", e.msg));
  } catch (const std::exception& e) {
    return file_error({1, 1}, fmt::format("invalid YAML: {}", e.what()));
  }
  if (roots.empty()) {
    return file_error({1, 1}, "the file holds no YAML document; write a LabCluster manifest");
  }
  for (std::size_t i = 0; i < roots.size(); ++i) {
    ParsedDocument doc;
    doc.file = std::string(file);
    doc.index = static_cast<int>(i);
    doc.start =
        i < scan.starts.size() ? PosOf(scan.starts[i], {1, 1}) : PosOf(roots[i].Mark(), {1, 1});
    try {
      DocumentParser(doc).Run(roots[i]);
    } catch (const YAML::Exception& e) {
      // yaml-cpp throws on misuse of an iterator or conversion; keep it local.
      doc.object.reset();
      doc.diagnostics.push_back({Severity::kError, doc.file, PosOf(e.mark, doc.start), "",
                                 fmt::format("invalid YAML: {}", e.msg)});
    }
    SortDiagnostics(doc);
    docs.push_back(std::move(doc));
  }
  return docs;
}

}  // namespace vmlab::crds
