#include "reconcilers/labcluster_reconciler.h"

#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <map>

#include "controller/fake_clock.h"
#include "crds/canonical.h"
#include "crds/labcluster_parse.h"
#include "metrics/lab_metrics.h"
#include "metrics/registry.h"
#include "../controller/scratch_dir.h"

namespace vmlab::reconcilers {
namespace {

using controller::DesiredLab;
using std::chrono::seconds;
using testing::HasSubstr;

class FakeDesiredState final : public controller::DesiredState {
 public:
  std::optional<DesiredLab> Get(const std::string& name) const override {
    auto it = labs.find(name);
    if (it == labs.end()) return std::nullopt;
    return it->second;
  }
  std::vector<std::string> Names() const override {
    std::vector<std::string> names;
    for (const auto& [name, lab] : labs) names.push_back(name);
    return names;
  }
  std::map<std::string, DesiredLab> labs;
};

DesiredLab Valid(const std::string& name, int workers) {
  auto docs = crds::ParseManifests("lab.yaml", testing_support::LabManifest(name, "172.42.42.0/24", workers));
  DesiredLab lab;
  lab.name = name;
  lab.spec = docs.at(0).object;
  lab.spec_hash = crds::SpecHash(lab.spec->spec);
  lab.source = "lab.yaml";
  lab.spec_valid = true;
  return lab;
}

class LabClusterReconcilerTest : public testing::Test {
 protected:
  controller::LabRecord Record(const std::string& name) { return store_.Get(name).value(); }
  const controller::Condition& Cond(const controller::LabRecord& r, const char* type) {
    const auto* c = r.FindCondition(type);
    EXPECT_NE(c, nullptr) << type;
    return *c;
  }

  testing_support::ScratchDir dir_;
  controller::FakeClock clock_;
  FakeDesiredState desired_;
  controller::StatusStore store_{dir_.path()};
  metrics::Registry registry_;
  metrics::LabMetrics lab_metrics_{registry_};
  LabClusterReconciler reconciler_{desired_, store_, clock_, &lab_metrics_};
};

TEST_F(LabClusterReconcilerTest, RecordsANewLabHonestly) {
  desired_.labs["spk"] = Valid("spk", 2);
  ASSERT_TRUE(reconciler_.Reconcile("spk").has_value());
  const auto r = Record("spk");
  EXPECT_EQ(r.generation, 1);
  EXPECT_EQ(r.observed_generation, 1);
  EXPECT_EQ(Cond(r, "SpecValid").status, "True");
  EXPECT_EQ(Cond(r, "Ready").status, "False");
  EXPECT_EQ(Cond(r, "Ready").reason, "NotImplemented");
  EXPECT_EQ(Cond(r, "InfrastructureReady").status, "Unknown");
  EXPECT_THAT(Cond(r, "InfrastructureReady").message, HasSubstr("not implemented yet"));
  ASSERT_EQ(r.nodes.size(), 3u);
  EXPECT_EQ(r.nodes[0].name, "spk-cp-1");
  EXPECT_EQ(r.nodes[2].ip, "172.42.42.102");
  EXPECT_EQ(r.nodes[2].domain_state, "missing");
  ASSERT_FALSE(r.events.empty());
  EXPECT_EQ(r.events.front().reason, "Created");
  EXPECT_NE(registry_.Serialize().find(
                "vmlab_labcluster_status_condition{name=\"spk\",status=\"True\",type=\"SpecValid\"} 1"),
            std::string::npos);
}

TEST_F(LabClusterReconcilerTest, GenerationMovesOnlyWithTheSpec) {
  desired_.labs["spk"] = Valid("spk", 1);
  ASSERT_TRUE(reconciler_.Reconcile("spk").has_value());
  ASSERT_TRUE(reconciler_.Reconcile("spk").has_value());
  EXPECT_EQ(Record("spk").generation, 1) << "a resync must not bump the generation";
  desired_.labs["spk"] = Valid("spk", 3);
  ASSERT_TRUE(reconciler_.Reconcile("spk").has_value());
  EXPECT_EQ(Record("spk").generation, 2);
  EXPECT_EQ(Record("spk").events.back().reason, "SpecChanged");
}

TEST_F(LabClusterReconcilerTest, InvalidSpecKeepsGenerationAndSaysWhy) {
  desired_.labs["spk"] = Valid("spk", 1);
  ASSERT_TRUE(reconciler_.Reconcile("spk").has_value());
  clock_.Advance(seconds(10));
  DesiredLab broken = desired_.labs["spk"];
  broken.spec_valid = false;
  broken.invalid_reason = "InvalidSpec";
  broken.invalid_message = "lab.yaml:11:15: error: spec.workers.replicas: must be between 0 and 150";
  desired_.labs["spk"] = broken;
  ASSERT_TRUE(reconciler_.Reconcile("spk").has_value());
  ASSERT_TRUE(reconciler_.Reconcile("spk").has_value());
  const auto r = Record("spk");
  EXPECT_EQ(r.generation, 1);
  const auto& spec_valid = Cond(r, "SpecValid");
  EXPECT_EQ(spec_valid.status, "False");
  EXPECT_EQ(spec_valid.reason, "InvalidSpec");
  EXPECT_THAT(spec_valid.message, HasSubstr("spec.workers.replicas"));
  EXPECT_THAT(spec_valid.message, HasSubstr("the last valid spec (generation 1) stays in force"));
  EXPECT_EQ(spec_valid.last_transition, clock_.WallNow());
  EXPECT_EQ(r.events.back().type, "Warning");
  EXPECT_EQ(r.events.back().count, 1) << "a second reconcile of the same problem adds no event";
}

TEST_F(LabClusterReconcilerTest, PendingDeletionIsShownAndGoneLabIsRemoved) {
  desired_.labs["spk"] = Valid("spk", 1);
  ASSERT_TRUE(reconciler_.Reconcile("spk").has_value());
  desired_.labs["spk"].deletion_at = clock_.WallNow() + seconds(30);
  ASSERT_TRUE(reconciler_.Reconcile("spk").has_value());
  EXPECT_EQ(Cond(Record("spk"), "Deleting").status, "True");
  EXPECT_EQ(Cond(Record("spk"), "Ready").reason, "Deleting");
  desired_.labs.erase("spk");
  ASSERT_TRUE(reconciler_.Reconcile("spk").has_value());
  EXPECT_FALSE(store_.Get("spk").has_value());
  EXPECT_EQ(registry_.Serialize().find("name=\"spk\""), std::string::npos);
}

}  // namespace
}  // namespace vmlab::reconcilers
