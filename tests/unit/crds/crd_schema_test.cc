// crds/labcluster.yaml against the parser: the CRD's defaults are vmlab's
// defaults, and the CRD is a well-formed apiextensions.k8s.io/v1 object. (That
// the schema rejects what the validator rejects is checked by
// tests/schema/check_crd_schema.py with an independent JSON-schema validator.)
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <string>
#include <utility>
#include <vector>

#include "crds/canonical.h"
#include "crds/labcluster_parse.h"
#include "test_files.h"

namespace vmlab::crds {
namespace {

using testing_support::ReadSourceFile;

YAML::Node OpenApiSchema() {
  const YAML::Node crd = YAML::Load(ReadSourceFile("crds/labcluster.yaml"));
  return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
}

// Every scalar default in `schema`, keyed by dotted field path.
void CollectDefaults(const YAML::Node& schema, const std::string& path,
                     std::vector<std::pair<std::string, YAML::Node>>& out) {
  if (schema["default"] && schema["type"].as<std::string>() != "object") {
    out.emplace_back(path, schema["default"]);
  }
  if (const YAML::Node properties = schema["properties"]) {
    for (const auto& property : properties) {
      const std::string name = property.first.as<std::string>();
      CollectDefaults(property.second, path.empty() ? name : path + "." + name, out);
    }
  }
}

TEST(CrdSchemaTest, IsAnApiextensionsV1CrdForLabCluster) {
  const YAML::Node crd = YAML::Load(ReadSourceFile("crds/labcluster.yaml"));
  EXPECT_EQ(crd["apiVersion"].as<std::string>(), "apiextensions.k8s.io/v1");
  EXPECT_EQ(crd["kind"].as<std::string>(), "CustomResourceDefinition");
  EXPECT_EQ(crd["metadata"]["name"].as<std::string>(), "labclusters.vmlab.io");
  EXPECT_EQ(crd["spec"]["group"].as<std::string>() + "/" +
                crd["spec"]["versions"][0]["name"].as<std::string>(),
            std::string(kApiVersion));
  EXPECT_EQ(crd["spec"]["names"]["kind"].as<std::string>(), std::string(kKind));
}

TEST(CrdSchemaTest, DefaultsAreTheParsersDefaults) {
  std::vector<std::pair<std::string, YAML::Node>> defaults;
  CollectDefaults(OpenApiSchema(), "", defaults);
  ASSERT_GE(defaults.size(), 20u) << "the CRD lost its defaults";

  // A manifest with only the required fields: every other field defaults.
  auto docs = ParseManifests("required-only.yaml",
                             "apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\n"
                             "metadata: {name: lab}\nspec: {kubernetes: {version: \"1.30.4\"}}\n");
  ASSERT_EQ(docs.size(), 1u);
  ASSERT_TRUE(docs[0].valid());
  const YAML::Node canonical = YAML::Load(CanonicalYaml(*docs[0].object));
  for (const auto& [path, value] : defaults) {
    YAML::Node node = canonical;
    std::string rest = path;
    while (!rest.empty()) {
      const auto dot = rest.find('.');
      node.reset(node[rest.substr(0, dot)]);
      rest = dot == std::string::npos ? "" : rest.substr(dot + 1);
    }
    ASSERT_TRUE(node.IsDefined()) << path << " is not in the canonical form";
    EXPECT_EQ(YAML::Dump(node), YAML::Dump(value)) << path;
  }
}

}  // namespace
}  // namespace vmlab::crds
