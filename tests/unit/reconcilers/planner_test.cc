// The infrastructure planner, table by table: creation, scale up and down,
// resize, every drift kind under Remediate and Report, deletion.
#include "reconcilers/infrastructure/planner.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "crds/canonical.h"
#include "crds/labcluster_parse.h"
#include "reconcilers/infrastructure/identity.h"

namespace vmlab::reconcilers::infrastructure {
namespace {

using testing::ElementsAre;
using testing::IsEmpty;

crds::LabCluster Lab(int control_planes, int workers, const std::string& policy = "Remediate",
                     int worker_cpus = 2) {
  const std::string text = fmt::format(
      "apiVersion: vmlab.io/v1alpha1\nkind: LabCluster\nmetadata: {{name: lab}}\nspec:\n"
      "  kubernetes: {{version: \"1.30.4\"}}\n  controlPlane: {{replicas: {}}}\n"
      "  workers: {{replicas: {}, cpus: {}}}\n  drift: {{policy: {}}}\n",
      control_planes, workers, worker_cpus, policy);
  auto docs = crds::ParseManifests("lab.yaml", text);
  EXPECT_TRUE(docs.at(0).valid()) << text;
  return *docs.at(0).object;
}

// What libvirt would show for a lab built exactly as `lab` says.
Observed Built(const crds::LabCluster& lab, const std::string& hash) {
  Observed o;
  o.network = NetworkInfo{NetworkName("lab"), true, Ownership{"lab", "", "", hash}, {}, {}};
  for (const auto& node : crds::PlanNodes(lab)) {
    const bool cp = node.role == crds::NodeRole::kControlPlane;
    o.domains.push_back(
        {node.name, "running", cp ? lab.spec.control_plane.cpus : lab.spec.workers.cpus,
         cp ? lab.spec.control_plane.memory_mib : lab.spec.workers.memory_mib,
         Ownership{"lab", node.name, std::string(crds::ToString(node.role)), hash}});
    o.volumes.insert(node.name + "-root.qcow2");
    o.volumes.insert(node.name + "-seed.iso");
    o.known_nodes.insert(node.name);
    o.network->dhcp_hosts[node.name] =
        crds::Ipv4Address{static_cast<std::uint32_t>(node.address)}.ToString();
    o.network->dns_hosts[node.name] = o.network->dhcp_hosts[node.name];
  }
  return o;
}

// "Kind target" for each action, for compact expectations.
std::vector<std::string> Steps(const Plan& plan) {
  std::vector<std::string> out;
  for (const auto& a : plan.actions)
    out.push_back(fmt::format("{} {}", ToString(a.kind), a.target));
  return out;
}

std::vector<std::string> DriftKinds(const Plan& plan) {
  std::vector<std::string> out;
  for (const auto& d : plan.drift)
    out.push_back(fmt::format("{} {}{}", d.kind, d.object, d.remediated ? " (repaired)" : ""));
  return out;
}

Plan PlanFor(const crds::LabCluster& lab, const Observed& observed, const std::string& hash = "h") {
  return PlanInfrastructure(
      "lab", Desired{&lab, false, hash, "/s", "qemu", {}, {}, "", false, false}, observed);
}

Plan PlanGolden(const crds::LabCluster& lab, const Observed& observed, std::string backing,
                bool hold, bool builder) {
  return PlanInfrastructure(
      "lab", Desired{&lab, false, "h", "/s", "qemu", {}, {}, std::move(backing), hold, builder},
      observed);
}

// spec.cache.goldenImage: while the image is built, the builder runs on the
// lab's network and no node is created; then nodes' disks are backed by the
// image and the builder goes with its volumes, as vmlab's own (no drift).
TEST(PlannerTest, GoldenImageBuilderFirstThenNodesBackedByTheImage) {
  const auto lab = Lab(1, 1);
  auto plan = PlanGolden(lab, Observed{}, "", true, true);
  EXPECT_THAT(Steps(plan),
              ElementsAre("EnsurePool vmlab", "DefineNetwork vmlab-lab", "StartNetwork vmlab-lab",
                          "CreateVolume lab-golden-root.qcow2", "CreateSeed lab-golden-seed.iso",
                          "DefineDomain lab-golden", "StartDomain lab-golden"));
  EXPECT_THAT(plan.actions[3].xml, testing::HasSubstr("<backingStore>"));
  EXPECT_THAT(plan.actions[3].xml, testing::HasSubstr(lab.spec.image.path));
  EXPECT_THAT(plan.actions[5].xml, testing::HasSubstr("/s/pool/lab-golden-root.qcow2"));
  EXPECT_THAT(plan.drift, IsEmpty());

  // The builder powered off; the image is built: nodes come, the builder goes.
  Observed built;
  built.network = NetworkInfo{NetworkName("lab"), true, Ownership{"lab", "", "", "h"}, {}, {}};
  built.domains.push_back(
      {"lab-golden", "shutoff", 2, 2048, Ownership{"lab", "lab-golden", "worker", "h"}});
  built.volumes = {"lab-golden-root.qcow2", "lab-golden-seed.iso"};
  plan = PlanGolden(lab, built, "/s/pool/golden-0123456789abcdef.qcow2", false, false);
  const auto steps = Steps(plan);
  for (const char* step :
       {"CreateVolume lab-cp-1-root.qcow2", "DefineDomain lab-worker-1", "DeleteDomain lab-golden",
        "DeleteVolume lab-golden-root.qcow2", "DeleteVolume lab-golden-seed.iso"}) {
    EXPECT_THAT(steps, testing::Contains(step));
  }
  for (const auto& action : plan.actions) {
    if (action.kind == ActionKind::kCreateVolume) {
      EXPECT_THAT(action.xml, testing::HasSubstr("/s/pool/golden-0123456789abcdef.qcow2"))
          << action.target;
    }
  }
  EXPECT_THAT(plan.drift, IsEmpty()) << "the builder is not an orphan";
  EXPECT_TRUE(IsLabVolume("lab", "lab-golden-root.qcow2"));
  EXPECT_FALSE(IsLabVolume("lab", "golden-0123456789abcdef.qcow2"));

  // Waiting for another lab's build: existing nodes stay, missing ones wait.
  auto partly = Built(lab, "h");
  partly.domains.pop_back();  // lab-worker-1 is gone
  plan = PlanGolden(lab, partly, "", true, false);
  for (const auto& step : Steps(plan)) {
    EXPECT_THAT(step, testing::Not(testing::HasSubstr("lab-worker-1"))) << "held";
    EXPECT_THAT(step, testing::Not(testing::HasSubstr("Delete"))) << "nothing removed";
  }
}

TEST(PlannerTest, NewLabCreatesEverythingWithoutDrift) {
  const auto plan = PlanFor(Lab(1, 1), Observed{});
  EXPECT_THAT(
      Steps(plan),
      ElementsAre("EnsurePool vmlab", "DefineNetwork vmlab-lab", "StartNetwork vmlab-lab",
                  "CreateVolume lab-cp-1-root.qcow2", "CreateSeed lab-cp-1-seed.iso",
                  "DefineDomain lab-cp-1", "StartDomain lab-cp-1",
                  "CreateVolume lab-worker-1-root.qcow2", "CreateSeed lab-worker-1-seed.iso",
                  "DefineDomain lab-worker-1", "StartDomain lab-worker-1"));
  EXPECT_THAT(plan.drift, IsEmpty());
}

TEST(PlannerTest, ConvergedLabNeedsOnlyThePool) {
  const auto lab = Lab(2, 3);
  EXPECT_THAT(Steps(PlanFor(lab, Built(lab, "h"))), ElementsAre("EnsurePool vmlab"));
}

TEST(PlannerTest, ScaleUpAddsTheNextIndices) {
  const auto plan = PlanFor(Lab(1, 3), Built(Lab(1, 1), "h"));
  EXPECT_THAT(
      Steps(plan),
      ElementsAre("EnsurePool vmlab", "AddNetworkHost vmlab-lab", "AddNetworkHost vmlab-lab",
                  "CreateVolume lab-worker-2-root.qcow2", "CreateSeed lab-worker-2-seed.iso",
                  "DefineDomain lab-worker-2", "StartDomain lab-worker-2",
                  "CreateVolume lab-worker-3-root.qcow2", "CreateSeed lab-worker-3-seed.iso",
                  "DefineDomain lab-worker-3", "StartDomain lab-worker-3"));
  EXPECT_THAT(plan.drift, IsEmpty());
}

TEST(PlannerTest, ScaleDownRemovesTheHighestIndicesAndTheirVolumes) {
  const auto plan = PlanFor(Lab(1, 1), Built(Lab(1, 3), "h"));
  EXPECT_THAT(
      Steps(plan),
      ElementsAre("EnsurePool vmlab", "DeleteDomain lab-worker-2", "DeleteDomain lab-worker-3",
                  "RemoveNetworkHost vmlab-lab", "RemoveNetworkHost vmlab-lab",
                  "DeleteVolume lab-worker-2-root.qcow2", "DeleteVolume lab-worker-2-seed.iso",
                  "DeleteVolume lab-worker-3-root.qcow2", "DeleteVolume lab-worker-3-seed.iso"));
  EXPECT_THAT(plan.actions[3].xml, testing::HasSubstr(R"(name="lab-worker-2" ip="172.42.42.102")"));
  EXPECT_THAT(plan.drift, IsEmpty()) << "scaling down is not drift";
}

TEST(PlannerTest, DrainingWorkersStayWithTheirAddressAndVolumes) {
  const auto lab = Lab(1, 1);
  const Plan plan = PlanInfrastructure(
      "lab", Desired{&lab, false, "h", "/s", "qemu", {}, {"lab-worker-3"}, "", false, false},
      Built(Lab(1, 3), "h"));
  EXPECT_THAT(
      Steps(plan),
      ElementsAre("EnsurePool vmlab", "DeleteDomain lab-worker-2", "RemoveNetworkHost vmlab-lab",
                  "DeleteVolume lab-worker-2-root.qcow2", "DeleteVolume lab-worker-2-seed.iso"))
      << "lab-worker-3 is still draining: its domain, DHCP host and volumes stay";
  EXPECT_THAT(plan.actions[2].xml, testing::HasSubstr(R"(name="lab-worker-2")"));
  EXPECT_THAT(plan.held, ElementsAre("lab-worker-3"));
  EXPECT_THAT(plan.refused, IsEmpty());
}

TEST(PlannerTest, DroppedControlPlanesStayUntilTheirEtcdMemberIsGone) {
  const Observed observed = Built(Lab(3, 1), "h");
  Plan plan = PlanFor(Lab(1, 1), observed);
  EXPECT_THAT(Steps(plan), ElementsAre("EnsurePool vmlab"))
      << "nothing removed, no address dropped";
  EXPECT_THAT(plan.refused, ElementsAre("lab-cp-2", "lab-cp-3"));
  EXPECT_THAT(plan.drift, IsEmpty());

  const auto lab = Lab(1, 1);
  plan = PlanInfrastructure(
      "lab", Desired{&lab, false, "h", "/s", "qemu", {"lab-cp-3"}, {}, "", false, false}, observed);
  EXPECT_THAT(
      Steps(plan),
      ElementsAre("EnsurePool vmlab", "DeleteDomain lab-cp-3", "RemoveNetworkHost vmlab-lab",
                  "DeleteVolume lab-cp-3-root.qcow2", "DeleteVolume lab-cp-3-seed.iso"));
  EXPECT_THAT(plan.refused, ElementsAre("lab-cp-2"));
}

TEST(PlannerTest, SpecResizeRestartsOneNodePerPass) {
  const auto before = Lab(1, 2, "Remediate", 2);
  const auto after = Lab(1, 2, "Remediate", 4);
  const auto plan = PlanFor(after, Built(before, "old"), "new");
  EXPECT_THAT(Steps(plan), ElementsAre("EnsurePool vmlab", "DefineDomain lab-cp-1",
                                       "DefineDomain lab-worker-1", "RestartDomain lab-worker-1"));
  EXPECT_THAT(plan.drift, IsEmpty());
}

struct DriftCase {
  const char* name;
  std::function<void(Observed&)> break_it;
  std::vector<std::string> remediate_steps;  // after EnsurePool
  std::string drift;                         // "Kind object"
};

class DriftTest : public testing::TestWithParam<DriftCase> {};

TEST_P(DriftTest, RepairedUnderRemediateReportedUnderReport) {
  const DriftCase& c = GetParam();
  for (const char* policy : {"Remediate", "Report"}) {
    const auto lab = Lab(1, 2, policy);
    Observed observed = Built(lab, "h");
    c.break_it(observed);
    const Plan plan = PlanFor(lab, observed);
    std::vector<std::string> expected{"EnsurePool vmlab"};
    if (std::string(policy) == "Remediate") {
      expected.insert(expected.end(), c.remediate_steps.begin(), c.remediate_steps.end());
    }
    EXPECT_EQ(Steps(plan), expected) << policy;
    EXPECT_THAT(DriftKinds(plan),
                ElementsAre(c.drift + (std::string(policy) == "Remediate" ? " (repaired)" : "")))
        << policy;
  }
}

INSTANTIATE_TEST_SUITE_P(
    EveryKind, DriftTest,
    testing::Values(DriftCase{"DomainMissing",
                              [](Observed& o) { o.domains.erase(o.domains.begin() + 1); },
                              {"DefineDomain lab-worker-1", "StartDomain lab-worker-1"},
                              "DomainMissing lab-worker-1"},
                    DriftCase{"DomainStopped",
                              [](Observed& o) { o.domains[1].state = "shutoff"; },
                              {"StartDomain lab-worker-1"},
                              "DomainStopped lab-worker-1"},
                    DriftCase{"DomainPaused",
                              [](Observed& o) { o.domains[1].state = "paused"; },
                              {"StartDomain lab-worker-1"},
                              "DomainStopped lab-worker-1"},
                    DriftCase{"DomainCrashed",
                              [](Observed& o) { o.domains[2].state = "crashed"; },
                              {"StartDomain lab-worker-2"},
                              "DomainCrashed lab-worker-2"},
                    DriftCase{"ResourceMismatch",
                              [](Observed& o) { o.domains[1].memory_mib = 4096; },
                              {"DefineDomain lab-worker-1", "RestartDomain lab-worker-1"},
                              "ResourceMismatch lab-worker-1"},
                    DriftCase{"NetworkMissing",
                              [](Observed& o) { o.network.reset(); },
                              {"DefineNetwork vmlab-lab", "StartNetwork vmlab-lab"},
                              "NetworkMissing vmlab-lab"},
                    DriftCase{"NetworkInactive",
                              [](Observed& o) { o.network->active = false; },
                              {"StartNetwork vmlab-lab"},
                              "NetworkInactive vmlab-lab"},
                    DriftCase{"VolumeMissing",
                              [](Observed& o) { o.volumes.erase("lab-worker-2-root.qcow2"); },
                              {"CreateVolume lab-worker-2-root.qcow2"},
                              "VolumeMissing lab-worker-2-root.qcow2"},
                    DriftCase{"SeedMissing",
                              [](Observed& o) { o.volumes.erase("lab-worker-1-seed.iso"); },
                              {"CreateSeed lab-worker-1-seed.iso"},
                              "VolumeMissing lab-worker-1-seed.iso"},
                    DriftCase{"OrphanDomain",
                              [](Observed& o) {
                                o.domains.push_back(
                                    {"lab-worker-9", "running", 2, 2048,
                                     Ownership{"lab", "lab-worker-9", "worker", "h"}});
                              },
                              {"DeleteDomain lab-worker-9"},
                              "OrphanDomain lab-worker-9"}),
    [](const testing::TestParamInfo<DriftCase>& param_info) {
      return std::string(param_info.param.name);
    });

TEST(PlannerTest, NetworkHostEntriesFollowTheNodes) {
  const auto lab = Lab(1, 2);
  const Plan plan = PlanFor(lab, Built(Lab(1, 1), "h"));
  std::vector<std::string> dns;
  for (const auto& a : plan.actions) {
    if (a.kind == ActionKind::kAddNetworkHost) dns.push_back(a.extra_xml);
  }
  EXPECT_THAT(dns, ElementsAre(R"(<host ip="172.42.42.102"><hostname>lab-worker-2</hostname>)"
                               R"(<hostname>lab-worker-2.lab.local</hostname></host>)"));
}

// What a crash (SIGKILL) between two libvirt calls leaves behind is finished
// on the next pass, never taken for drift (tests/e2e/crash_test.py kills the
// controller after each call on a real libvirtd).
TEST(PlannerTest, ASeedBeforeItsDomainIsMadeAnew) {
  Observed o = Built(Lab(1, 1), "h");
  o.volumes.insert("lab-worker-2-root.qcow2");
  o.volumes.insert("lab-worker-2-seed.iso");  // maybe cut short in its upload
  o.network->dhcp_hosts["lab-worker-2"] = "172.42.42.102";
  o.network->dns_hosts["lab-worker-2"] = "172.42.42.102";
  const auto plan = PlanFor(Lab(1, 2), o);
  EXPECT_THAT(Steps(plan), ElementsAre("EnsurePool vmlab", "DeleteVolume lab-worker-2-seed.iso",
                                       "CreateSeed lab-worker-2-seed.iso",
                                       "DefineDomain lab-worker-2", "StartDomain lab-worker-2"));
  EXPECT_THAT(plan.drift, IsEmpty());
}

TEST(PlannerTest, ADomainDefinedButNeverStartedIsStartedWithoutDrift) {
  for (const std::string policy : {"Remediate", "Report"}) {
    const auto lab = Lab(1, 1, policy);
    Observed o = Built(lab, "h");
    o.domains[1].state = "shutoff";
    o.known_nodes.erase("lab-worker-1");  // never seen running
    auto plan = PlanFor(lab, o);
    EXPECT_THAT(Steps(plan), ElementsAre("EnsurePool vmlab", "StartDomain lab-worker-1")) << policy;
    EXPECT_THAT(plan.drift, IsEmpty()) << policy;
    // Stopped by vmlab for a restart whose start never came (libvirtd went away).
    o.known_nodes.insert("lab-worker-1");
    o.restarting.insert("lab-worker-1");
    plan = PlanFor(lab, o);
    EXPECT_THAT(Steps(plan), ElementsAre("EnsurePool vmlab", "StartDomain lab-worker-1")) << policy;
    EXPECT_THAT(plan.drift, IsEmpty()) << policy;
    o.restarting.clear();
    // Known (it ran before): stopped behind vmlab's back, drift.
    o.known_nodes.insert("lab-worker-1");
    plan = PlanFor(lab, o);
    EXPECT_THAT(DriftKinds(plan),
                ElementsAre(policy == "Remediate" ? "DomainStopped lab-worker-1 (repaired)"
                                                  : "DomainStopped lab-worker-1"));
  }
}

TEST(PlannerTest, ARedefinedDomainStillRunningTheOldResourcesIsRestarted) {
  for (const std::string policy : {"Remediate", "Report"}) {
    const auto lab = Lab(1, 2, policy, 4);
    Observed o = Built(lab, "h");  // defined with 4 vCPUs (the spec's)...
    for (auto& d : o.domains) {
      d.live_vcpus = d.vcpus;
      d.live_memory_mib = d.memory_mib;
    }
    o.domains[1].live_vcpus = 2;  // ...still running with 2: the restart never came
    o.domains[2].live_vcpus = 2;
    const auto plan = PlanFor(lab, o);
    if (policy == "Remediate") {
      EXPECT_THAT(Steps(plan), ElementsAre("EnsurePool vmlab", "RestartDomain lab-worker-1"))
          << "one node per pass, as for a spec resize";
      EXPECT_THAT(DriftKinds(plan), ElementsAre("ResourceMismatch lab-worker-1 (repaired)",
                                                "ResourceMismatch lab-worker-2 (repaired)"));
    } else {
      EXPECT_THAT(Steps(plan), ElementsAre("EnsurePool vmlab"));
      EXPECT_THAT(DriftKinds(plan),
                  ElementsAre("ResourceMismatch lab-worker-1", "ResourceMismatch lab-worker-2"));
    }
    EXPECT_THAT(plan.drift[0].message, testing::HasSubstr("runs with 2 vCPUs"));
    // Started from an older definition of vmlab's (its live hash is not the
    // defined one): vmlab's own resize, cut short; restarted, no drift.
    o.domains[1].live_spec_hash = "older";
    o.domains[2].live_spec_hash = "older";
    const auto own = PlanFor(lab, o);
    EXPECT_THAT(Steps(own), ElementsAre("EnsurePool vmlab", "RestartDomain lab-worker-1"))
        << policy;
    EXPECT_THAT(own.drift, IsEmpty()) << policy;
  }
}

TEST(PlannerTest, AHalfUpdatedNetworkHostGetsOnlyTheMissingSection) {
  const auto lab = Lab(1, 1);
  Observed o = Built(lab, "h");
  o.network->dns_hosts.erase("lab-worker-1");               // DHCP added, the crash came before DNS
  o.network->dhcp_hosts["lab-worker-2"] = "172.42.42.102";  // removed from DNS, not DHCP
  o.network->dns_hosts["lab"] = "172.42.42.10";  // the endpoint's name: not a node's, kept
  const auto plan = PlanFor(lab, o);
  ASSERT_THAT(Steps(plan), ElementsAre("EnsurePool vmlab", "AddNetworkHost vmlab-lab",
                                       "RemoveNetworkHost vmlab-lab"));
  EXPECT_EQ(plan.actions[1].xml, "") << "the DHCP entry is there already";
  EXPECT_THAT(plan.actions[1].extra_xml, testing::HasSubstr("<hostname>lab-worker-1</hostname>"));
  EXPECT_THAT(plan.actions[2].xml, testing::HasSubstr("lab-worker-2"));
  EXPECT_EQ(plan.actions[2].extra_xml, "") << "the DNS entry is gone already";
}

TEST(PlannerTest, DeletionTearsDownEverythingOwned) {
  const auto lab = Lab(1, 1);
  const Observed observed = Built(lab, "h");
  const Plan plan = PlanInfrastructure(
      "lab", Desired{nullptr, false, "", "/s", "qemu", {}, {}, "", false, false}, observed);
  EXPECT_THAT(Steps(plan),
              ElementsAre("DeleteDomain lab-cp-1", "DeleteDomain lab-worker-1",
                          "DeleteVolume lab-cp-1-root.qcow2", "DeleteVolume lab-cp-1-seed.iso",
                          "DeleteVolume lab-worker-1-root.qcow2",
                          "DeleteVolume lab-worker-1-seed.iso", "DeleteNetwork vmlab-lab"));
}

TEST(PlannerTest, RetainKeepsVolumesOnDeletion) {
  const auto lab = Lab(1, 1);
  const Plan plan = PlanInfrastructure(
      "lab", Desired{nullptr, true, "", "/s", "qemu", {}, {}, "", false, false}, Built(lab, "h"));
  EXPECT_THAT(Steps(plan),
              ElementsAre("DeleteDomain lab-cp-1", "DeleteDomain lab-worker-1",
                          "DeleteVolume lab-cp-1-seed.iso", "DeleteVolume lab-worker-1-seed.iso",
                          "DeleteNetwork vmlab-lab"))
      << "the disks stay; the seeds are rebuilt when the lab comes back";
}

TEST(PlannerTest, RecognisesOnlyThisLabsVolumes) {
  EXPECT_TRUE(IsLabVolume("lab", "lab-cp-1-root.qcow2"));
  EXPECT_TRUE(IsLabVolume("lab", "lab-worker-12-data.qcow2"));
  EXPECT_TRUE(IsLabVolume("lab", "lab-worker-3-seed.iso"));
  EXPECT_FALSE(IsLabVolume("lab", "lab2-cp-1-root.qcow2"));
  EXPECT_FALSE(IsLabVolume("lab", "lab-cp-1-root.qcow2.bak"));
  EXPECT_FALSE(IsLabVolume("lab", "lab-cp-x-root.qcow2"));
  EXPECT_FALSE(IsLabVolume("lab", "base.qcow2"));
  EXPECT_FALSE(IsLabVolume("lab-cp", "lab-cp-1-root.qcow2")) << "lab-cp's nodes are lab-cp-cp-i";
}

TEST(PlannerTest, RecognisesOnlyThisLabsNodes) {
  EXPECT_TRUE(IsLabNode("lab", "lab-cp-1"));
  EXPECT_TRUE(IsLabNode("lab", "lab-worker-12"));
  EXPECT_TRUE(IsLabNode("lab", "lab-golden"));
  EXPECT_FALSE(IsLabNode("lab", "lab")) << "the endpoint's name";
  EXPECT_FALSE(IsLabNode("lab", "lab2-cp-1"));
  EXPECT_FALSE(IsLabNode("lab", "lab-cp-1-seed"));
  EXPECT_FALSE(IsLabNode("lab-cp", "lab-cp-1"));
}

}  // namespace
}  // namespace vmlab::reconcilers::infrastructure
